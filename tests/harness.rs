//! Tests of the test harness itself: the strace parser and its write policy (`common::strace`),
//! on logs written by hand in each format strace prints.

mod common;

use common::strace::{self, Target};

#[test]
fn calls_are_split_into_name_arguments_and_result_in_every_pid_format() {
    let log = "4850  execve(\"/bin/true\", [\"true\", \"a, b\"], 0x7ffc /* 35 vars */) = 0\n\
               [pid  4851] openat(AT_FDCWD, \"/etc/x\", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)\n\
               mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f08f7411000\n\
               4850  --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED} ---\n\
               4850  exit_group(0)                     = ?\n\
               4850  +++ exited with 0 +++\n";
    let calls = strace::parse(log);
    let names: Vec<&str> = calls.iter().map(|call| call.name.as_str()).collect();
    assert_eq!(names, ["execve", "openat", "mmap", "exit_group"]);
    assert_eq!(calls[0].pid, Some(4850));
    assert_eq!(calls[0].args, ["\"/bin/true\"", "[\"true\", \"a, b\"]", "0x7ffc /* 35 vars */"]);
    assert_eq!(calls[0].value(), Some(0));
    assert_eq!((calls[1].pid, calls[1].errno(), calls[1].value()), (Some(4851), Some("ENOENT"), Some(-1)));
    assert_eq!((calls[2].pid, calls[2].value()), (None, Some(0x7f08f7411000)));
    assert_eq!((calls[3].result.as_deref(), calls[3].value()), (Some("?"), None));
}

#[test]
fn an_unfinished_call_is_joined_with_its_resumed_rest() {
    let log = "10 read(3,  <unfinished ...>\n\
               11 write(1<pipe:[7]>, \"hi\", 2) = 2\n\
               10 <... read resumed>\"\\177ELF\", 832) = 832\n\
               11 wait4(-1,  <unfinished ...>\n";
    let calls = strace::parse(log);
    let read = calls.iter().find(|call| call.name == "read").expect("the read");
    assert_eq!((read.pid, read.value()), (Some(10), Some(832)));
    assert_eq!(read.args, ["3", "\"\\177ELF\"", "832"]);
    let wait = calls.iter().find(|call| call.name == "wait4").expect("the call the log ends inside");
    assert_eq!(wait.result, None);
}

#[test]
fn escaped_strings_and_paths_decode_to_their_bytes() {
    assert_eq!(strace::unescape(r#"\x7f\x45LF\n\t\\\"\0\177"#), b"\x7fELF\n\t\\\"\0\x7f");
    assert_eq!(strace::quoted_bytes(r#"[{iov_base="ab", iov_len=2}, {iov_base="\x63\"", iov_len=2}]"#), b"abc\"");
    assert_eq!(Target::of(r"3<\x2f\x74\x6d\x70\x2f\x78>"), Some(Target::File("/tmp/x".into())));
    assert_eq!(Target::of("AT_FDCWD"), None);
    assert_eq!(Target::of("\"3<a>\""), None);
}

#[test]
fn the_policy_tells_files_from_memfds_devices_pipes_and_sockets() {
    let cases = [
        ("1</tmp/out.txt>", Target::File("/tmp/out.txt".into())),
        ("1</tmp/#123>(deleted)", Target::File("/tmp/#123".into())),
        ("1</dev/shm/x>", Target::File("/dev/shm/x".into())),
        ("4</memfd:hello>(deleted)", Target::Memfd("/memfd:hello".into())),
        ("2</dev/pts/0>", Target::Device("/dev/pts/0".into())),
        ("1</dev/null>", Target::Device("/dev/null".into())),
        ("1<pipe:[1234]>", Target::Pipe),
        ("5<socket:[99]>", Target::Socket),
        ("6<anon_inode:[eventfd]>", Target::Other("anon_inode:[eventfd]".into())),
    ];
    for (arg, target) in cases {
        assert_eq!(Target::of(arg), Some(target), "{arg}");
    }
}

#[test]
fn writes_name_their_destination_and_bytes() {
    let log = "123 write(1</tmp/out.txt>, \"x\", 1) = 1\n\
               write(4</memfd:hello>(deleted), \"\\177ELF\", 4) = 4\n\
               write(1<pipe:[1234]>, \"hi\", 2) = 2\n\
               [pid 7] pwrite64(5</home/u/copy>, \"a\", 1, 0) = 1\n\
               writev(5</home/u/v>, [{iov_base=\"a\", iov_len=1}, {iov_base=\"b\", iov_len=1}], 2) = 2\n\
               splice(3<pipe:[1]>, NULL, 6</var/tmp/f>, NULL, 4096, 0) = 4096\n\
               splice(3</data/in>, NULL, 6<pipe:[2]>, NULL, 4096, 0) = 4096\n\
               copy_file_range(3</data/in>, NULL, 4</memfd:m>(deleted), NULL, 10, 0) = 10\n\
               sendfile(1<pipe:[3]>, 3</data/in>, NULL, 10) = 10\n\
               read(3</etc/passwd>, \"\", 1) = 0\n";
    let writes = strace::writes(&strace::parse(log));
    assert_eq!(writes.len(), 9, "every write-family call, not the read");
    let paths = |keep: fn(&strace::Write) -> bool| -> Vec<&str> {
        writes.iter().filter(|w| keep(w)).filter_map(|w| w.target.as_ref()?.path()).collect()
    };
    assert_eq!(paths(strace::Write::to_file), ["/tmp/out.txt", "/home/u/copy", "/home/u/v", "/var/tmp/f"]);
    assert_eq!(
        paths(strace::Write::to_file_or_memfd),
        ["/tmp/out.txt", "/memfd:hello", "/home/u/copy", "/home/u/v", "/var/tmp/f", "/memfd:m"]
    );
    assert_eq!(writes[1].data.as_deref(), Some(&b"\x7fELF"[..]));
    assert_eq!(writes[4].data.as_deref(), Some(&b"ab"[..]));
    assert_eq!((writes[5].data.as_deref(), writes[5].written()), (None, 4096), "splice shows no bytes");
    let to_memfd: u64 = writes.iter().filter(|w| w.to_memfd()).map(strace::Write::written).sum();
    assert_eq!(to_memfd, 14);
}

#[test]
fn the_preloaders_calls_run_from_its_execve_to_ld_sos_first_brk() {
    let log = "1 execve(\"./preload\", [\"./preload\", \"/bin/true\"], 0x1 /* 3 vars */) = 0\n\
               1 openat(AT_FDCWD, \"/bin/true\", O_RDONLY) = 3\n\
               1 prctl(PR_SET_MM, PR_SET_MM_MAP, 0x7ffd, 0x68, 0) = -1 EBUSY (Device or resource busy)\n\
               1 munmap(0x7f12b0517000, 12288) = 0\n\
               1 brk(NULL) = 0x557ec0ea2000\n\
               1 brk(0x557ec0ec3000) = 0x557ec0ec3000\n\
               1 brk(NULL) = 0x557ec0ec3000\n";
    let calls = strace::parse(log);
    let preloader = strace::preloader_calls(&calls).unwrap();
    assert_eq!(preloader.iter().map(|call| call.name.as_str()).collect::<Vec<_>>(), ["openat", "prctl", "munmap"]);
    assert_eq!(strace::summary(preloader), "munmap 1, openat 1, prctl 1; failed: prctl EBUSY");
    assert!(strace::preloader_calls(&calls[1..]).is_err(), "no execve");
    assert!(strace::preloader_calls(&calls[..4]).is_err(), "no brk(NULL)");
}
