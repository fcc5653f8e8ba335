//! A tonic codec made of an encoder and a decoder, for the streams that pass bytes
//! through instead of (de)serialising messages: the agent's GetFlows server, the
//! relay's upstream client and downstream server, and counting clients in benchmarks.

use std::fmt;
use std::marker::PhantomData;

use tonic::Status;
use tonic::codec::{Codec, Decoder, Encoder};

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
