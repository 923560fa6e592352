/* Reports what a freshly exec'd process sees of itself, one `key=value` per line.
 *
 * Keys starting with `addr.` hold randomised addresses: the test compares them only through
 * relations. Every other key is deterministic for a given program, arguments, environment and
 * user, and must be the same whether the kernel or the preloader started the program.
 *
 * All /proc files are read into static buffers before anything is printed (stdio may use brk).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <sys/rseq.h>
#endif

#ifndef AT_HWCAP2
#define AT_HWCAP2 26
#endif
#ifndef AT_RSEQ_FEATURE_SIZE
#define AT_RSEQ_FEATURE_SIZE 27
#endif
#ifndef AT_RSEQ_ALIGN
#define AT_RSEQ_ALIGN 28
#endif
#ifndef AT_MINSIGSTKSZ
#define AT_MINSIGSTKSZ 51
#endif

extern char _start[];

typedef uintptr_t uptr;

struct file {
    char data[1 << 16];
    size_t len;
};

static struct file f_auxv, f_cmdline, f_environ, f_stat, f_comm, f_status, f_maps;

static void read_file(const char *path, struct file *f)
{
    f->len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n;
    while (f->len < sizeof f->data - 1 && (n = read(fd, f->data + f->len, sizeof f->data - 1 - f->len)) > 0)
        f->len += (size_t)n;
    close(fd);
    f->data[f->len] = 0;
}

static void print_hex(const char *key, const void *data, size_t len)
{
    printf("%s=", key);
    for (size_t i = 0; i < len; i++)
        printf("%02x", ((const unsigned char *)data)[i]);
    printf("\n");
}

static void print_addr(const char *key, uptr value)
{
    printf("addr.%s=0x%lx\n", key, (unsigned long)value);
}

/* ---- /proc/self/maps ---- */

struct map {
    uptr start, end, offset;
    char perms[5];
    const char *path; /* "" for anonymous */
};
static struct map maps[1024];
static int nmaps;

static void parse_maps(void)
{
    nmaps = 0;
    for (char *line = f_maps.data; *line && nmaps < 1024;) {
        char *eol = strchr(line, '\n');
        if (eol)
            *eol = 0;
        struct map *m = &maps[nmaps];
        int path_at = 0;
        unsigned long start, end, offset;
        if (sscanf(line, "%lx-%lx %4s %lx %*s %*u %n", &start, &end, m->perms, &offset, &path_at) >= 4) {
            m->start = start;
            m->end = end;
            m->offset = offset;
            m->path = path_at ? line + path_at : "";
            nmaps++;
        }
        if (!eol)
            break;
        line = eol + 1;
    }
}

static int map_containing(uptr addr)
{
    for (int i = 0; i < nmaps; i++)
        if (maps[i].start <= addr && addr < maps[i].end)
            return i;
    return -1;
}

static int map_named(const char *path)
{
    for (int i = 0; i < nmaps; i++)
        if (!strcmp(maps[i].path, path))
            return i;
    return -1;
}

/* The first (lowest) mapping of the file mapped at addr, or -1; *end = end of its last mapping. */
static int first_map_of_file_at(uptr addr, uptr *end)
{
    int i = map_containing(addr);
    if (i < 0 || maps[i].path[0] != '/')
        return -1;
    int first = map_named(maps[i].path);
    for (int j = first; j < nmaps; j++)
        if (!strcmp(maps[j].path, maps[i].path))
            *end = maps[j].end;
    return first;
}

/* ---- /proc/self/stat: field number -> value ---- */

static unsigned long stat_field(int field)
{
    char *p = strrchr(f_stat.data, ')');
    if (!p)
        return 0;
    p += 2; /* field 3 starts here */
    for (int n = 3; n < field && p; n++) {
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    return p ? strtoul(p, NULL, 10) : 0;
}

/* ---- dl_iterate_phdr ---- */

static int dl_count;
static uptr dl_first_addr, dl_first_phdr;

static int dl_callback(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    if (dl_count == 0) {
        dl_first_addr = info->dlpi_addr;
        dl_first_phdr = (uptr)info->dlpi_phdr;
    }
    /* The vdso's name differs between libcs but not between runs. */
    printf("dl.%d=%s\n", dl_count, info->dlpi_name ? info->dlpi_name : "(null)");
    dl_count++;
    return 0;
}

static void print_status_fields(void)
{
    static const char *const wanted[] = {"Uid", "Gid", "Groups", "NoNewPrivs", "Seccomp", "SigBlk", "SigIgn",
                                         "SigCgt", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "Threads",
                                         "VmExe", "Speculation_Store_Bypass", "Cpus_allowed_list"};
    for (char *line = f_status.data; *line;) {
        char *eol = strchr(line, '\n');
        if (eol)
            *eol = 0;
        char *colon = strchr(line, ':');
        if (colon) {
            *colon = 0;
            for (size_t i = 0; i < sizeof wanted / sizeof *wanted; i++) {
                if (!strcmp(line, wanted[i])) {
                    char *value = colon + 1;
                    while (*value == ' ' || *value == '\t')
                        value++;
                    for (char *t = value; *t; t++)
                        if (*t == '\t')
                            *t = ' ';
                    printf("status.%s=%s\n", line, value);
                }
            }
        }
        if (!eol)
            break;
        line = eol + 1;
    }
}

static void print_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        printf("fds=(cannot open /proc/self/fd)\n");
        return;
    }
    /* readdir order follows the fd numbers on procfs */
    printf("fds=");
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d))
            printf("%s,", e->d_name);
    printf("\n");
    closedir(d);
}

int main(int argc, char **argv, char **envp)
{
    /* The kernel's initial stack: argc at sp, then argv, NULL, envp, NULL, auxv. */
    long *sp = (long *)argv - 1;
    char **env_end_ptr = envp;
    while (*env_end_ptr)
        env_end_ptr++;
    Elf64_auxv_t *stack_auxv = (Elf64_auxv_t *)(env_end_ptr + 1);
    size_t stack_auxv_len = 0;
    while (stack_auxv[stack_auxv_len].a_type != AT_NULL)
        stack_auxv_len++;
    stack_auxv_len++; /* AT_NULL */

    char exe[4096] = "";
    ssize_t exe_len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (exe_len >= 0)
        exe[exe_len] = 0;
    read_file("/proc/self/auxv", &f_auxv);
    read_file("/proc/self/cmdline", &f_cmdline);
    read_file("/proc/self/environ", &f_environ);
    read_file("/proc/self/stat", &f_stat);
    read_file("/proc/self/comm", &f_comm);
    read_file("/proc/self/status", &f_status);

    /* Grow the brk so that [heap] shows, read the maps, then give it back. */
    uptr brk_now = (uptr)syscall(SYS_brk, 0);
    syscall(SYS_brk, brk_now + 65536);
    read_file("/proc/self/maps", &f_maps);
    syscall(SYS_brk, brk_now);
    parse_maps();

    printf("exe=%s\n", exe);
    if (f_comm.len && f_comm.data[f_comm.len - 1] == '\n')
        f_comm.data[f_comm.len - 1] = 0;
    printf("comm=%s\n", f_comm.data);
    print_hex("cmdline", f_cmdline.data, f_cmdline.len);
    print_hex("environ", f_environ.data, f_environ.len);

    /* argv/envp layout */
    printf("argc=%d\n", argc);
    printf("argc_on_stack=%d\n", sp[0] == argc);
    printf("sp_mod16=%lu\n", (unsigned long)((uptr)sp % 16));
    printf("envp_follows_argv=%d\n", envp == argv + argc + 1);
    int contiguous = 1;
    char *next = argv[0];
    for (int i = 0; i < argc; i++) {
        contiguous &= argv[i] == next;
        next = argv[i] + strlen(argv[i]) + 1;
    }
    char *args_end = next;
    for (char **e = envp; *e; e++) {
        contiguous &= *e == next;
        next = *e + strlen(*e) + 1;
    }
    printf("strings_contiguous=%d\n", contiguous);
    print_addr("sp", (uptr)sp);
    print_addr("argv0", (uptr)argv[0]);
    print_addr("args_end", (uptr)args_end);
    print_addr("env0", envp[0] ? (uptr)envp[0] : 0);
    print_addr("env_strings_end", (uptr)next);

    /* auxv from the stack and from /proc */
    printf("auxv_types=");
    for (size_t i = 0; i < stack_auxv_len; i++)
        printf("%lu,", (unsigned long)stack_auxv[i].a_type);
    printf("\n");
    print_hex("addr.stack_auxv", stack_auxv, stack_auxv_len * sizeof *stack_auxv);
    print_hex("addr.proc_auxv", f_auxv.data, f_auxv.len);

    static const struct {
        const char *name;
        unsigned long type;
    } values[] = {
        {"at_phent", AT_PHENT},     {"at_phnum", AT_PHNUM},   {"at_pagesz", AT_PAGESZ},
        {"at_flags", AT_FLAGS},     {"at_uid", AT_UID},       {"at_euid", AT_EUID},
        {"at_gid", AT_GID},         {"at_egid", AT_EGID},     {"at_secure", AT_SECURE},
        {"at_hwcap", AT_HWCAP},     {"at_hwcap2", AT_HWCAP2}, {"at_clktck", AT_CLKTCK},
        {"at_minsigstksz", AT_MINSIGSTKSZ}, {"at_rseq_feature_size", AT_RSEQ_FEATURE_SIZE},
        {"at_rseq_align", AT_RSEQ_ALIGN},
    }, addresses[] = {
        {"at_phdr", AT_PHDR},     {"at_base", AT_BASE},         {"at_entry", AT_ENTRY},
        {"at_random", AT_RANDOM}, {"at_execfn", AT_EXECFN},     {"at_platform", AT_PLATFORM},
        {"at_sysinfo_ehdr", AT_SYSINFO_EHDR},
    };
    for (size_t i = 0; i < sizeof values / sizeof *values; i++)
        printf("%s=0x%lx\n", values[i].name, getauxval(values[i].type));
    for (size_t i = 0; i < sizeof addresses / sizeof *addresses; i++)
        print_addr(addresses[i].name, getauxval(addresses[i].type));
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    const char *platform = (const char *)getauxval(AT_PLATFORM);
    printf("at_execfn_str=%s\n", execfn ? execfn : "(none)");
    printf("at_platform_str=%s\n", platform ? platform : "(none)");
    print_addr("start", (uptr)_start);

    /* the program's own ELF headers, found through AT_PHDR */
    const Elf64_Phdr *phdr = (const Elf64_Phdr *)getauxval(AT_PHDR);
    unsigned long phnum = getauxval(AT_PHNUM);
    uptr first_load = UINTPTR_MAX, load_end = 0, phdr_vaddr = 0, stack_flags = 0, max_align = 0;
    for (unsigned long i = 0; phdr && i < phnum; i++) {
        if (phdr[i].p_type == PT_LOAD) {
            if (phdr[i].p_vaddr < first_load)
                first_load = phdr[i].p_vaddr;
            if (phdr[i].p_vaddr + phdr[i].p_memsz > load_end)
                load_end = phdr[i].p_vaddr + phdr[i].p_memsz;
            if (phdr[i].p_align > max_align && !(phdr[i].p_align & (phdr[i].p_align - 1)))
                max_align = phdr[i].p_align;
        } else if (phdr[i].p_type == PT_PHDR) {
            phdr_vaddr = phdr[i].p_vaddr;
        } else if (phdr[i].p_type == PT_GNU_STACK) {
            stack_flags = phdr[i].p_flags;
        }
    }
    printf("elf.first_load_vaddr=0x%lx\n", (unsigned long)first_load);
    printf("elf.load_end_vaddr=0x%lx\n", (unsigned long)load_end);
    printf("elf.phdr_vaddr=0x%lx\n", (unsigned long)phdr_vaddr);
    printf("elf.gnu_stack_flags=0x%lx\n", (unsigned long)stack_flags);
    printf("elf.max_load_align=0x%lx\n", (unsigned long)max_align);

    /* mappings */
    uptr prog_end = 0, interp_end = 0;
    int prog = first_map_of_file_at((uptr)phdr, &prog_end);
    /* A program copied into anonymous memory (preload --fd from a stream): the mapping of its headers. */
    if (prog < 0 && (prog = map_containing((uptr)phdr)) >= 0)
        prog_end = maps[prog].end;
    int interp = getauxval(AT_BASE) ? first_map_of_file_at(getauxval(AT_BASE), &interp_end) : -1;
    printf("prog_path=%s\n", prog >= 0 ? maps[prog].path : "(AT_PHDR not in a file mapping)");
    printf("interp_path=%s\n", interp >= 0 ? maps[interp].path : "");
    if (prog >= 0) {
        const Elf64_Ehdr *ehdr = (const Elf64_Ehdr *)maps[prog].start;
        printf("prog_first_offset=0x%lx\n", (unsigned long)maps[prog].offset);
        printf("prog_first_perms=%s\n", maps[prog].perms);
        if (maps[prog].offset == 0) {
            printf("elf.type=%u\n", ehdr->e_type);
            printf("elf.entry=0x%lx\n", (unsigned long)ehdr->e_entry);
        }
        print_addr("prog_first", maps[prog].start);
        print_addr("prog_first_end", maps[prog].end);
        print_addr("prog_end", prog_end);
    }
    if (interp >= 0)
        print_addr("interp_first", maps[interp].start);
    int heap = map_named("[heap]"), stack = map_named("[stack]"), vdso = map_named("[vdso]");
    printf("has_heap=%d\nhas_vdso=%d\n", heap >= 0, vdso >= 0);
    if (heap >= 0) {
        print_addr("heap_start", maps[heap].start);
        print_addr("heap_end", maps[heap].end);
    }
    print_addr("brk", brk_now);
    printf("stack_perms=%s\n", stack >= 0 ? maps[stack].perms : "(no [stack])");
    if (stack >= 0) {
        print_addr("stack_start", maps[stack].start);
        print_addr("stack_end", maps[stack].end);
    }
    if (vdso >= 0)
        print_addr("vdso_start", maps[vdso].start);
    /* file-backed mappings in address order, positioned relative to their file's first mapping */
    for (int i = 0, n = 0; i < nmaps; i++) {
        if (maps[i].path[0] != '/')
            continue;
        /* preload's stage-2 stub: the one page it leaves, above [stack] (README, "Layout") */
        if (!strcmp(maps[i].path, "/memfd:preload (deleted)") && !strcmp(maps[i].perms, "r-xp") &&
            maps[i].end - maps[i].start == 4096)
            continue;
        int first = map_named(maps[i].path);
        printf("filemap.%02d=%s off=0x%lx len=0x%lx rel=0x%lx %s\n", n++, maps[i].perms,
               (unsigned long)maps[i].offset, (unsigned long)(maps[i].end - maps[i].start),
               (unsigned long)(maps[i].start - maps[first].start), maps[i].path);
    }

    /* mm fields from /proc/self/stat */
    static const struct {
        const char *name;
        int field;
    } stat_fields[] = {
        {"stat.start_code", 26}, {"stat.end_code", 27}, {"stat.start_stack", 28}, {"stat.start_data", 45},
        {"stat.end_data", 46},   {"stat.start_brk", 47}, {"stat.arg_start", 48},  {"stat.arg_end", 49},
        {"stat.env_start", 50},  {"stat.env_end", 51},
    };
    for (size_t i = 0; i < sizeof stat_fields / sizeof *stat_fields; i++)
        print_addr(stat_fields[i].name, stat_field(stat_fields[i].field));

    dl_iterate_phdr(dl_callback, NULL);
    printf("dl_count=%d\n", dl_count);
    print_addr("dl_first_addr", dl_first_addr);
    print_addr("dl_first_phdr", dl_first_phdr);

    /* process state an exec resets and a preloader must leave as it found it */
    print_status_fields();
    print_fds();
    printf("personality=0x%x\n", personality(0xffffffff));
    printf("dumpable=%d\n", prctl(PR_GET_DUMPABLE));
    char name[17] = "";
    prctl(PR_GET_NAME, name);
    printf("pr_name=%s\n", name);
    stack_t ss;
    sigaltstack(NULL, &ss);
    printf("sigaltstack_flags=0x%x\n", ss.ss_flags);
    unsigned short fcw;
    __asm__ volatile("fnstcw %0" : "=m"(fcw));
    printf("fcw=0x%x\nmxcsr=0x%x\n", fcw, __builtin_ia32_stmxcsr());
#ifdef __GLIBC__
    printf("rseq_size=%u\n", __rseq_size); /* 0 if glibc could not register rseq */
#endif
    return 0;
}
