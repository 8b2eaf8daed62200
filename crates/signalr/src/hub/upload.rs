//! Client-to-server streams: [`ClientStream`] and the [`UploadStreams`] tuples that hub methods
//! take them in.

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use serde::de::DeserializeOwned;
use signalr_protocol::Value;
use tokio::sync::mpsc;

use super::error::HubError;

/// One item pushed by the dispatcher into an upload stream: a value, or the client's error.
pub(crate) type UploadItem = Result<Value, String>;

/// The receiving end the dispatcher hands to a method for each of its `streamIds`.
pub(crate) type UploadReceiver = mpsc::Receiver<UploadItem>;

/// A stream of items the client uploads (`streamIds`), typed as `T`.
///
/// It yields `Ok(item)` per `StreamItem`, ends on the client's `Completion`, and yields one
/// `Err(HubException(error))` when the client completes the stream with an error (as .NET's
/// reader throws). An item that does not deserialize into `T` yields an error too. At most
/// `stream_buffer_capacity` items wait unread; beyond that the server stops reading the
/// connection until the method catches up.
pub struct ClientStream<T> {
    receiver: UploadReceiver,
    _item: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for ClientStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientStream").finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned> ClientStream<T> {
    pub(crate) fn new(receiver: UploadReceiver) -> Self {
        Self { receiver, _item: PhantomData }
    }

    /// The next item, `None` once the client completed the stream.
    pub async fn next_item(&mut self) -> Option<Result<T, HubError>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl<T: DeserializeOwned> Stream for ClientStream<T> {
    type Item = Result<T, HubError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.receiver.poll_recv(cx) {
            Poll::Ready(Some(Ok(value))) => {
                Poll::Ready(Some(value.deserialize::<T>().map_err(|e| HubError::exception("InvalidDataException", e.to_string()))))
            }
            Poll::Ready(Some(Err(error))) => {
                self.receiver.close();
                Poll::Ready(Some(Err(HubError::HubException(error))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The upload-stream parameters of a hub method: `()`, `(ClientStream<A>,)`,
/// `(ClientStream<A>, ClientStream<B>)` … up to four.
pub trait UploadStreams: Sized + Send + 'static {
    /// How many streams the method expects.
    const COUNT: usize;
    /// Builds the streams from the receivers, in `streamIds` order.
    #[doc(hidden)]
    fn from_receivers(receivers: Vec<UploadReceiver>) -> Self;
}

impl UploadStreams for () {
    const COUNT: usize = 0;
    fn from_receivers(_: Vec<UploadReceiver>) -> Self {}
}

macro_rules! impl_upload_streams {
    ($count:expr; $($name:ident),+) => {
        impl<$($name: DeserializeOwned + Send + 'static),+> UploadStreams for ($(ClientStream<$name>,)+) {
            const COUNT: usize = $count;
            fn from_receivers(receivers: Vec<UploadReceiver>) -> Self {
                let mut receivers = receivers.into_iter();
                ($(ClientStream::<$name>::new(receivers.next().expect("stream count checked")),)+)
            }
        }
    };
}

impl_upload_streams!(1; A1);
impl_upload_streams!(2; A1, A2);
impl_upload_streams!(3; A1, A2, A3);
impl_upload_streams!(4; A1, A2, A3, A4);
