//! The stages' side of [`Readable`] and [`Writable`]: how each stream type
//! gives the pipeline its events.
//!
//! The file streams' `on_*` already add listeners and return handles.
//! `net::Stream`'s `on_*` still keep **one** callback per event (issue 19
//! moves them to listener lists): until then a pipeline's callback
//! replaces the user's on a `Stream` stage, the handle returned is
//! detached (removing it does nothing), and the pipeline's callbacks go
//! inert when it is over. When `Stream::on_*` return [`Listener`], each
//! method of the `Stream` impls below becomes the one call, returning its
//! handle: nothing else in the pipeline changes.

use std::io;

use super::{DataListener, Readable, Writable};
use crate::fs::{ReadStream, WriteStream};
use crate::listeners::Listener;
use crate::net::Stream;

// --- net::Stream (TCP, Unix sockets, pipes, stdio, a child's stdio) ------

impl Readable for Stream {
    fn add_data_listener(&self, f: Box<DataListener>) -> Listener {
        self.on_data(f);
        Listener::detached()
    }
    fn add_end_listener(&self, f: Box<dyn FnMut()>) -> Listener {
        self.on_end(f);
        Listener::detached()
    }
    fn add_error_listener(&self, f: Box<dyn FnMut(io::Error)>) -> Listener {
        self.on_error(f);
        Listener::detached()
    }
    fn add_close_listener(&self, f: Box<dyn FnMut(bool)>) -> Listener {
        self.on_close(f);
        Listener::detached()
    }
    fn pause(&self) {
        Stream::pause(self)
    }
    fn resume(&self) {
        Stream::resume(self)
    }
    fn destroy_stream(&self, err: Option<io::Error>) {
        match err {
            Some(e) => self.destroy_with(e),
            None => self.destroy(),
        }
    }
}

impl Writable for Stream {
    fn write(&self, chunk: &[u8]) -> bool {
        Stream::write(self, chunk)
    }
    fn end_with(&self, done: Box<dyn FnOnce(io::Result<()>)>) {
        // An empty write completes after every write before it (the queue
        // is in order): that is Node's 'finish'. The FIN follows at once.
        Stream::write_with(self, &[], done);
        Stream::end(self);
    }
    fn add_drain_listener(&self, f: Box<dyn FnMut()>) -> Listener {
        self.on_drain(f);
        Listener::detached()
    }
    fn add_error_listener(&self, f: Box<dyn FnMut(io::Error)>) -> Listener {
        <Stream as Readable>::add_error_listener(self, f)
    }
    fn add_close_listener(&self, f: Box<dyn FnMut(bool)>) -> Listener {
        <Stream as Readable>::add_close_listener(self, f)
    }
    fn destroy_stream(&self, err: Option<io::Error>) {
        <Stream as Readable>::destroy_stream(self, err)
    }
}

// --- fs streams ----------------------------------------------------------

impl Readable for ReadStream {
    fn add_data_listener(&self, f: Box<DataListener>) -> Listener {
        self.on_data(f)
    }
    fn add_end_listener(&self, f: Box<dyn FnMut()>) -> Listener {
        self.on_end(f)
    }
    fn add_error_listener(&self, f: Box<dyn FnMut(io::Error)>) -> Listener {
        self.on_error(f)
    }
    fn add_close_listener(&self, f: Box<dyn FnMut(bool)>) -> Listener {
        self.on_close(f)
    }
    fn pause(&self) {
        ReadStream::pause(self)
    }
    fn resume(&self) {
        ReadStream::resume(self)
    }
    fn destroy_stream(&self, err: Option<io::Error>) {
        match err {
            Some(e) => self.destroy_with(e),
            None => self.destroy(),
        }
    }
}

impl Writable for WriteStream {
    fn write(&self, chunk: &[u8]) -> bool {
        WriteStream::write(self, chunk)
    }
    fn end_with(&self, done: Box<dyn FnOnce(io::Result<()>)>) {
        WriteStream::end_with(self, done)
    }
    fn add_drain_listener(&self, f: Box<dyn FnMut()>) -> Listener {
        self.on_drain(f)
    }
    fn add_error_listener(&self, f: Box<dyn FnMut(io::Error)>) -> Listener {
        self.on_error(f)
    }
    fn add_close_listener(&self, f: Box<dyn FnMut(bool)>) -> Listener {
        self.on_close(f)
    }
    fn destroy_stream(&self, err: Option<io::Error>) {
        match err {
            Some(e) => self.destroy_with(e),
            None => self.destroy(),
        }
    }
}
