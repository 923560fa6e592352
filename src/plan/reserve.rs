//! Address ranges to keep free: `--reserve`, PRELOAD_RESERVE, WINEPRELOADRESERVE and Wine's
//! default table.

use crate::{page_align, page_start};

/// A half-open, page-aligned range [start, end).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    pub const fn new(start: u64, end: u64) -> Self {
        Self { start, end }
    }

    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    pub fn overlaps(&self, other: &Range) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// Wine 8.0's x86_64 preloader table (loader/preloader.c): DOS area, low memory, user shared
/// data, and the top-down heap area.
pub const WINE_DEFAULT_RANGES: [Range; 4] = [
    Range::new(0x1_0000, 0x11_0000),
    Range::new(0x11_0000, 0x6800_0000),
    Range::new(0x7ff0_0000, 0x7fff_0000),
    Range::new(0x7fff_fe00_0000, 0x7fff_ffff_0000),
];

/// Wine 8.0's i386 preloader table: the low 64 KiB (below `vm.mmap_min_addr` only a process with
/// CAP_SYS_RAWIO gets it), DOS area, low memory, and the top-down allocations with user shared
/// data and the virtual heap.
pub const WINE_I386_DEFAULT_RANGES: [Range; 4] = [
    Range::new(0, 0x1_0000),
    Range::new(0x1_0000, 0x11_0000),
    Range::new(0x11_0000, 0x6800_0000),
    Range::new(0x7f00_0000, 0x8200_0000),
];

/// The page Wine's preloader makes readable and executable when a range it reserved holds it:
/// the last below 2 GiB, a workaround for kernels that limited the code segment to the highest
/// executable address (exec-shield). Only the i386 table holds it.
pub const WINE_EXEC_PAGE: Range = Range::new(0x7fff_f000, 0x8000_0000);

/// How many ranges one launch can hold.
pub const MAX_RANGES: usize = 24;

/// A fixed-capacity list of ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeList {
    items: [Range; MAX_RANGES],
    len: usize,
}

impl Default for RangeList {
    fn default() -> Self {
        Self { items: [Range::default(); MAX_RANGES], len: 0 }
    }
}

impl RangeList {
    pub fn push(&mut self, range: Range) -> Result<(), &'static str> {
        let slot = self.items.get_mut(self.len).ok_or("too many ranges")?;
        *slot = range;
        self.len += 1;
        Ok(())
    }

    pub fn as_slice(&self) -> &[Range] {
        &self.items[..self.len]
    }

    /// Append every range of a `,`-separated list.
    pub fn extend_from_list(&mut self, text: &[u8]) -> Result<(), &'static str> {
        text.split(|&b| b == b',').try_for_each(|item| self.push(parse_range(item)?))
    }
}

fn parse_hex(text: &[u8]) -> Option<u64> {
    let digits = text.strip_prefix(b"0x").or_else(|| text.strip_prefix(b"0X")).unwrap_or(text);
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    digits.iter().try_fold(0u64, |value, &digit| Some(value << 4 | u64::from(char::from(digit).to_digit(16)?)))
}

/// A hex address, `0x` optional.
pub fn parse_address(text: &[u8]) -> Result<u64, &'static str> {
    parse_hex(text).ok_or("not a hexadecimal address")
}

/// `START-END` in hex (`0x` optional), widened to whole pages as Wine does.
pub fn parse_range(text: &[u8]) -> Result<Range, &'static str> {
    let range = parse_any_range(text)?;
    if range.is_empty() {
        return Err("END must be above START");
    }
    Ok(range)
}

fn parse_any_range(text: &[u8]) -> Result<Range, &'static str> {
    let dash = text.iter().position(|&b| b == b'-').ok_or("expected START-END")?;
    let start = parse_address(&text[..dash])?;
    let end = parse_address(&text[dash + 1..])?;
    Ok(Range::new(page_start(start), if end <= start { page_start(start) } else { page_align(end) }))
}

/// WINEPRELOADRESERVE: one `START-END`; Wine drops an empty range (it sets `0-0` for processes
/// without a PE image) but treats malformed text as fatal.
pub fn parse_wine_reserve(text: &[u8]) -> Result<Option<Range>, &'static str> {
    parse_any_range(text).map(|range| (!range.is_empty()).then_some(range))
}

/// The first mapping in `maps` (the text of /proc/self/maps) that overlaps `range`: its range
/// and its name (path or `[name]`, empty for anonymous memory).
pub fn find_in_maps<'m>(maps: &'m [u8], range: &Range) -> Option<(Range, &'m [u8])> {
    mappings(maps).find(|(mapping, _)| mapping.overlaps(range))
}

/// Every mapping of `maps` (the text of /proc/self/maps) in one pass, with its name; lines that
/// do not parse are skipped.
pub fn mappings(maps: &[u8]) -> impl Iterator<Item = (Range, &[u8])> {
    maps.split(|&b| b == b'\n').filter_map(|line| {
        let mut fields = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
        let span = fields.next()?;
        let dash = span.iter().position(|&b| b == b'-')?;
        let mapping = Range::new(parse_hex(&span[..dash])?, parse_hex(&span[dash + 1..])?);
        let name = fields.nth(4).map_or(&b""[..], |first| {
            let start = first.as_ptr() as usize - line.as_ptr() as usize;
            &line[start..]
        });
        Some((mapping, name))
    })
}

/// Make room in a full buffer of /proc/self/maps text read so far, keeping the whole lines of
/// its second half at its start: returns how many bytes are kept. Read on this way, every run of
/// adjacent lines shorter than half the buffer is whole in the buffer at some point.
pub fn keep_last_lines(buf: &mut [u8]) -> usize {
    let half = buf.len() / 2;
    let start = buf[half..].iter().position(|&b| b == b'\n').map_or(buf.len(), |at| half + at + 1);
    buf.copy_within(start.., 0);
    buf.len() - start
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_whole_lines_of_the_second_half() {
        let mut buf = *b"aaaa\nbbbb\ncccc\ndd";
        let kept = keep_last_lines(&mut buf);
        assert_eq!(&buf[..kept], b"cccc\ndd");
        // A second half without a line end keeps nothing (a line longer than half the buffer).
        let mut long = *b"a\nbbbbbbbbb";
        assert_eq!(keep_last_lines(&mut long), 0);
    }

    #[test]
    fn finds_the_overlapping_mapping_and_its_name() {
        let maps = b"555555554000-555555556000 r--p 00000000 fe:00 12 /usr/bin/my prog\n\
7ffff7fc1000-7ffff7fc5000 r--p 00000000 00:00 0                          [vvar]\n\
7ffff7ff0000-7ffff7ff1000 rw-p 00000000 00:00 0 \n";
        assert_eq!(
            find_in_maps(maps, &Range::new(0x5555_5555_5000, 0x5555_5555_7000)),
            Some((Range::new(0x5555_5555_4000, 0x5555_5555_6000), &b"/usr/bin/my prog"[..]))
        );
        assert_eq!(
            find_in_maps(maps, &Range::new(0x7fff_f7fc_0000, 0x7fff_f7fc_2000)).map(|m| m.1),
            Some(&b"[vvar]"[..])
        );
        assert_eq!(find_in_maps(maps, &Range::new(0x7fff_f7ff_0000, 0x7fff_f7ff_1000)).map(|m| m.1), Some(&b""[..]));
        assert_eq!(find_in_maps(maps, &Range::new(0x1000, 0x2000)), None);
        assert_eq!(find_in_maps(b"garbage\n\n", &Range::new(0, u64::MAX)), None);
    }

    #[test]
    fn parses_hex_ranges_with_or_without_prefix() {
        assert_eq!(parse_range(b"0x10000-0x20000"), Ok(Range::new(0x10000, 0x20000)));
        assert_eq!(parse_range(b"140000000-1401a1000"), Ok(Range::new(0x1_4000_0000, 0x1_401a_1000)));
        assert_eq!(parse_range(b"10001-1ffff"), Ok(Range::new(0x10000, 0x20000)), "widened to pages");
        assert_eq!(parse_range(b"0X0a-0Xff"), Ok(Range::new(0, 0x1000)));
    }

    #[test]
    fn wine_reserve_drops_empty_ranges_only() {
        assert_eq!(parse_wine_reserve(b"140000000-1401a1000"), Ok(Some(Range::new(0x1_4000_0000, 0x1_401a_1000))));
        assert_eq!(parse_wine_reserve(b"0-0"), Ok(None));
        assert_eq!(parse_wine_reserve(b"20000-10000"), Ok(None));
        assert_eq!(parse_wine_reserve(b"x-10000"), Err("not a hexadecimal address"));
    }

    #[test]
    fn refuses_malformed_ranges() {
        assert_eq!(parse_range(b"10000"), Err("expected START-END"));
        assert_eq!(parse_range(b"zz-30000"), Err("not a hexadecimal address"));
        assert_eq!(parse_range(b"-30000"), Err("not a hexadecimal address"));
        assert_eq!(parse_range(b"0x-30000"), Err("not a hexadecimal address"));
        assert_eq!(parse_range(b"10000-"), Err("not a hexadecimal address"));
        assert_eq!(parse_range(b"20000-10000"), Err("END must be above START"));
        assert_eq!(parse_range(b"20000-20000"), Err("END must be above START"));
        assert_eq!(parse_range(b"1-11111111111111111"), Err("not a hexadecimal address"));
    }

    #[test]
    fn lists_split_on_commas_and_stop_at_capacity() {
        let mut list = RangeList::default();
        list.extend_from_list(b"10000-20000,0x30000-0x40000").unwrap();
        assert_eq!(list.as_slice(), [Range::new(0x10000, 0x20000), Range::new(0x30000, 0x40000)]);
        assert_eq!(list.extend_from_list(b"50000-60000,bad"), Err("expected START-END"));
        let mut full = RangeList::default();
        for _ in 0..MAX_RANGES {
            full.push(Range::new(0, 1)).unwrap();
        }
        assert_eq!(full.push(Range::new(0, 1)), Err("too many ranges"));
    }

    #[test]
    fn overlap_is_half_open() {
        let a = Range::new(0x1000, 0x3000);
        assert!(a.overlaps(&Range::new(0x2000, 0x4000)));
        assert!(!a.overlaps(&Range::new(0x3000, 0x4000)));
        assert!(!a.overlaps(&Range::new(0, 0x1000)));
        assert!(a.overlaps(&Range::new(0, 0x10000)));
        assert_eq!(a.len(), 0x2000);
    }
}
