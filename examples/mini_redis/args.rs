//! The arguments of a request: borrowed from the buffer they were read
//! into ([`Args`]), or owned, for a command queued by `MULTI`
//! ([`OwnedArgs`]).

use std::ops::Range;
use std::rc::Rc;

/// The arguments of one request, borrowed from the read buffer.
#[derive(Clone, Copy)]
pub struct Args<'a> {
    buf: &'a [u8],
    ranges: &'a [Range<usize>],
    /// The connection's buffer that `buf` is a part of, starting at this
    /// offset in it, when the request was assembled from several reads: a
    /// large value may then keep that buffer instead of being copied.
    owner: Option<(&'a Rc<Vec<u8>>, usize)>,
}

impl<'a> Args<'a> {
    /// Arguments at `ranges` of `buf`.
    pub fn new(buf: &'a [u8], ranges: &'a [Range<usize>]) -> Args<'a> {
        Args {
            buf,
            ranges,
            owner: None,
        }
    }

    /// The same arguments, noting that `buf` starts at `offset` in `owner`.
    pub fn owned_by(self, owner: &'a Rc<Vec<u8>>, offset: usize) -> Args<'a> {
        Args {
            owner: Some((owner, offset)),
            ..self
        }
    }

    /// How many arguments (the command name included).
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether the request was empty (a blank line, `*0`).
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Argument `i`; 0 is the command name.
    pub fn get(&self, i: usize) -> &'a [u8] {
        &self.buf[self.ranges[i].clone()]
    }

    /// Arguments `from..` in order.
    pub fn iter_from(&self, from: usize) -> impl Iterator<Item = &'a [u8]> + 'a {
        let buf = self.buf;
        self.ranges[from..].iter().map(move |r| &buf[r.clone()])
    }

    /// Argument `i` as a range of a shared buffer, when it has one: a
    /// store may keep the buffer rather than copy the bytes.
    pub fn shared(&self, i: usize) -> Option<(Rc<Vec<u8>>, Range<usize>)> {
        let (owner, offset) = self.owner?;
        let r = &self.ranges[i];
        Some((owner.clone(), r.start + offset..r.end + offset))
    }
}

/// Arguments copied out of the read buffer, to be run later.
#[derive(Debug)]
pub struct OwnedArgs {
    buf: Vec<u8>,
    ranges: Vec<Range<usize>>,
}

impl OwnedArgs {
    /// A copy of `args`, the arguments packed into one buffer.
    pub fn copy(args: Args) -> OwnedArgs {
        let mut buf = Vec::with_capacity(args.iter_from(0).map(<[u8]>::len).sum());
        let mut ranges = Vec::with_capacity(args.len());
        for a in args.iter_from(0) {
            ranges.push(buf.len()..buf.len() + a.len());
            buf.extend_from_slice(a);
        }
        OwnedArgs { buf, ranges }
    }

    /// The arguments, borrowed.
    pub fn args(&self) -> Args<'_> {
        Args::new(&self.buf, &self.ranges)
    }
}
