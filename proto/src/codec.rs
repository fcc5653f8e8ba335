//! A tonic codec made of an encoder and a decoder, for the streams that pass bytes
//! through instead of (de)serialising messages: the agent's GetFlows server, the
//! relay's upstream client and downstream server, and counting clients in benchmarks.

use std::fmt;
use std::marker::PhantomData;

use tonic::Status;
use tonic::codec::{BufferSettings, Codec, Decoder, Encoder};

/// Largest HTTP/2 frame our clients accept from a streaming server (the protocol
/// allows up to 16 MiB; the default is 16 KiB). h2 writes one chained data frame per
/// `writev`, so on a busy stream the frame size sets the number of system calls
/// and receiver wakeups: 16 KiB frames made them most of the relay's CPU time.
pub const STREAM_MAX_FRAME_SIZE: u32 = 256 * 1024;

/// Buffers for the flow streams: tonic sends what it has encoded once this much is
/// ready (its default is 32 KiB), so a busy stream leaves in large writes, while a
/// quiet one is still sent as soon as the source has nothing more. The threshold
/// stays below the buffer's size so the buffer never grows: with tonic's defaults
/// (8 KiB, growing to pass 32 KiB) every chunk was copied almost twice while it
/// grew, a quarter of the relay's CPU time. 64 KiB is the most `bytes` keeps as a
/// buffer's size for the next chunk.
pub fn stream_buffers() -> BufferSettings {
    BufferSettings::new(64 * 1024, 60 * 1024)
}

/// Encodes with `E` and decodes with `D`, each made fresh by `Default`.
pub struct CodecPair<E, D>(PhantomData<fn() -> (E, D)>);

impl<E, D> CodecPair<E, D> {
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<E, D> Default for CodecPair<E, D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E, D> Clone for CodecPair<E, D> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E, D> Copy for CodecPair<E, D> {}

impl<E, D> fmt::Debug for CodecPair<E, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodecPair")
    }
}

impl<E, D> Codec for CodecPair<E, D>
where
    E: Encoder<Error = Status> + Default + Send + 'static,
    D: Decoder<Error = Status> + Default + Send + 'static,
    E::Item: Send + 'static,
    D::Item: Send + 'static,
{
    type Encode = E::Item;
    type Decode = D::Item;
    type Encoder = E;
    type Decoder = D;

    fn encoder(&mut self) -> E {
        E::default()
    }

    fn decoder(&mut self) -> D {
        D::default()
    }
}
