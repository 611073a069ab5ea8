//! The stages' side of [`Readable`] and [`Writable`]: how each stream type
//! gives the pipeline its events. Every stage's `on_*` adds a listener
//! beside the user's and returns its handle, which the pipeline removes
//! when it is over: a pipeline never occupies or displaces a user's
//! listener.

use std::io;

use super::{DataListener, Readable, Writable};
use crate::fs::{ReadStream, WriteStream};
use crate::listeners::Listener;
use crate::net::Stream;

// --- net::Stream (TCP, Unix sockets, pipes, stdio, a child's stdio) ------

impl Readable for Stream {
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
        self.on_drain(f)
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
