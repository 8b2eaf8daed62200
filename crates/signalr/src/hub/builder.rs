//! [`Hub`] and [`HubBuilder`]: a hub is a set of named, typed async methods plus connect and
//! disconnect hooks. Methods are registered as closures over typed parameter tuples, so the
//! compiler checks every method's signature and serde binds the wire arguments.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, Stream, StreamExt};
use serde::Serialize;
use signalr_protocol::Value;

use super::args::{BindError, HubArgs};
use super::context::{HubCallContext, HubCallerContext};
use super::error::HubError;
use super::upload::{UploadReceiver, UploadStreams};

/// What a bound hub method produces once run.
pub(crate) enum MethodOutput {
    /// A single result (`()` methods produce a null value, as .NET's void methods).
    Unary(BoxFuture<'static, Result<Value, HubError>>),
    /// A stream of results; the outer future may fail before the stream starts.
    Stream(BoxFuture<'static, Result<BoxStream<'static, Result<Value, HubError>>, HubError>>),
}

/// A registered method with its types erased.
pub(crate) trait ErasedMethod: Send + Sync + 'static {
    /// Whether the method streams results to the caller.
    fn is_streaming(&self) -> bool;
    /// How many client-to-server streams the method takes.
    fn upload_count(&self) -> usize;
    /// Binds the arguments and prepares the call (not yet running).
    fn call(&self, context: HubCallContext, arguments: Vec<Value>, uploads: Vec<UploadReceiver>) -> Result<MethodOutput, BindError>;
}

type ConnectHook = Arc<dyn Fn(HubCallContext) -> BoxFuture<'static, Result<(), HubError>> + Send + Sync>;
type DisconnectHook = Arc<dyn Fn(HubCallerContext, Option<String>) -> BoxFuture<'static, ()> + Send + Sync>;

/// A hub: named methods and lifecycle hooks. Cheap to clone; build it with [`Hub::builder`].
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<HubDefinition>,
}

pub(crate) struct HubDefinition {
    pub(crate) name: String,
    /// Keyed by the ASCII-lowercased method name: lookups are case-insensitive, like .NET's.
    pub(crate) methods: HashMap<String, Arc<dyn ErasedMethod>>,
    pub(crate) on_connected: Option<ConnectHook>,
    pub(crate) on_disconnected: Option<DisconnectHook>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut methods: Vec<&str> = self.inner.methods.keys().map(String::as_str).collect();
        methods.sort_unstable();
        f.debug_struct("Hub").field("name", &self.inner.name).field("methods", &methods).finish()
    }
}

impl Hub {
    /// Starts a hub named `name`. The name identifies the hub to backplanes (for a .NET fleet,
    /// use the full .NET type name, e.g. `Diquis.Infrastructure.Hubs.NotificationHub`).
    pub fn builder(name: impl Into<String>) -> HubBuilder {
        HubBuilder { definition: HubDefinition { name: name.into(), methods: HashMap::new(), on_connected: None, on_disconnected: None } }
    }

    /// The hub's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub(crate) fn method(&self, target: &str) -> Option<&Arc<dyn ErasedMethod>> {
        if target.bytes().any(|b| b.is_ascii_uppercase()) {
            self.inner.methods.get(&target.to_ascii_lowercase())
        } else {
            self.inner.methods.get(target)
        }
    }
}

/// Registers the methods and hooks of a [`Hub`].
///
/// Parameters are a tuple of `DeserializeOwned` types (`()` for none, `(String,)` for one);
/// results are any `Serialize` type (`()` for none, sent as a null result like .NET's void).
/// Methods return `Result<_, HubError>`; any `std::error::Error` converts with `?`.
pub struct HubBuilder {
    definition: HubDefinition,
}

impl std::fmt::Debug for HubBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubBuilder").field("name", &self.definition.name).finish_non_exhaustive()
    }
}

impl HubBuilder {
    fn insert(mut self, name: &str, method: Arc<dyn ErasedMethod>) -> Self {
        self.definition.methods.insert(name.to_ascii_lowercase(), method);
        self
    }

    /// A method returning one result: `|ctx, (a, b): (String, i32)| async move { Ok(a.len() as i32 + b) }`.
    pub fn method<A, R, F, Fut>(self, name: &str, method: F) -> Self
    where
        A: HubArgs,
        R: Serialize + Send + 'static,
        F: Fn(HubCallContext, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, HubError>> + Send + 'static,
    {
        let erased = move |context: HubCallContext, args: A, _: ()| method(context, args);
        self.insert(name, Arc::new(UnaryMethod { method: erased, _types: std::marker::PhantomData::<fn() -> (A, (), R)> }))
    }

    /// A method that also takes client-to-server streams (the `streamIds` of the invocation),
    /// e.g. `|ctx, (): (), (items,): (ClientStream<String>,)| async move { … }`.
    pub fn method_with_streams<A, S, R, F, Fut>(self, name: &str, method: F) -> Self
    where
        A: HubArgs,
        S: UploadStreams,
        R: Serialize + Send + 'static,
        F: Fn(HubCallContext, A, S) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, HubError>> + Send + 'static,
    {
        self.insert(name, Arc::new(UnaryMethod { method, _types: std::marker::PhantomData::<fn() -> (A, S, R)> }))
    }

    /// A method streaming results to the caller: the future resolves to a stream of
    /// `Result<T, HubError>`. The call's [`HubCallContext::cancellation_token`] fires when the
    /// client cancels; the stream is then dropped and a Completion sent.
    pub fn stream<A, T, St, F, Fut>(self, name: &str, method: F) -> Self
    where
        A: HubArgs,
        T: Serialize + Send + 'static,
        St: Stream<Item = Result<T, HubError>> + Send + 'static,
        F: Fn(HubCallContext, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<St, HubError>> + Send + 'static,
    {
        let erased = move |context: HubCallContext, args: A, _: ()| method(context, args);
        self.insert(name, Arc::new(StreamingMethod { method: erased, _types: std::marker::PhantomData::<fn() -> (A, (), T, St)> }))
    }

    /// A streaming method that also takes client-to-server streams.
    pub fn stream_with_streams<A, S, T, St, F, Fut>(self, name: &str, method: F) -> Self
    where
        A: HubArgs,
        S: UploadStreams,
        T: Serialize + Send + 'static,
        St: Stream<Item = Result<T, HubError>> + Send + 'static,
        F: Fn(HubCallContext, A, S) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<St, HubError>> + Send + 'static,
    {
        self.insert(name, Arc::new(StreamingMethod { method, _types: std::marker::PhantomData::<fn() -> (A, S, T, St)> }))
    }

    /// Runs after the handshake, before the connection's first message is dispatched
    /// (.NET `OnConnectedAsync`). An error closes the connection with
    /// `Connection closed with an error.` and no reconnect. Client results are not allowed here.
    pub fn on_connected<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(HubCallContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HubError>> + Send + 'static,
    {
        self.definition.on_connected = Some(Arc::new(move |context| hook(context).boxed()));
        self
    }

    /// Runs once the connection is gone (.NET `OnDisconnectedAsync`), with the error the
    /// client's Close message carried, if any. As in .NET it runs before the lifetime manager
    /// forgets the connection (its groups are left right after); sends to it are dropped.
    pub fn on_disconnected<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(HubCallerContext, Option<String>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.definition.on_disconnected = Some(Arc::new(move |context, error| hook(context, error).boxed()));
        self
    }

    /// Finishes the hub.
    pub fn build(self) -> Hub {
        Hub { inner: Arc::new(self.definition) }
    }
}

struct UnaryMethod<F, T> {
    method: F,
    /// The parameter and result types; `fn() -> T` keeps the method `Send + Sync`.
    _types: std::marker::PhantomData<fn() -> T>,
}

impl<A, S, R, F, Fut> ErasedMethod for UnaryMethod<F, (A, S, R)>
where
    A: HubArgs,
    S: UploadStreams,
    R: Serialize + Send + 'static,
    F: Fn(HubCallContext, A, S) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, HubError>> + Send + 'static,
{
    fn is_streaming(&self) -> bool {
        false
    }
    fn upload_count(&self) -> usize {
        S::COUNT
    }
    fn call(&self, context: HubCallContext, arguments: Vec<Value>, uploads: Vec<UploadReceiver>) -> Result<MethodOutput, BindError> {
        let args = A::bind(arguments)?;
        let kind = context.value_kind();
        let future = (self.method)(context, args, S::from_receivers(uploads));
        Ok(MethodOutput::Unary(
            async move {
                let result = future.await?;
                Value::from_serialize(kind, &result).map_err(|e| HubError::exception("JsonException", e.to_string()))
            }
            .boxed(),
        ))
    }
}

struct StreamingMethod<F, T> {
    method: F,
    /// The parameter and result types; `fn() -> T` keeps the method `Send + Sync`.
    _types: std::marker::PhantomData<fn() -> T>,
}

impl<A, S, T, St, F, Fut> ErasedMethod for StreamingMethod<F, (A, S, T, St)>
where
    A: HubArgs,
    S: UploadStreams,
    T: Serialize + Send + 'static,
    St: Stream<Item = Result<T, HubError>> + Send + 'static,
    F: Fn(HubCallContext, A, S) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<St, HubError>> + Send + 'static,
{
    fn is_streaming(&self) -> bool {
        true
    }
    fn upload_count(&self) -> usize {
        S::COUNT
    }
    fn call(&self, context: HubCallContext, arguments: Vec<Value>, uploads: Vec<UploadReceiver>) -> Result<MethodOutput, BindError> {
        let args = A::bind(arguments)?;
        let kind = context.value_kind();
        let future = (self.method)(context, args, S::from_receivers(uploads));
        Ok(MethodOutput::Stream(
            async move {
                let stream = future.await?;
                let values = stream.map(move |item| {
                    item.and_then(|value| {
                        Value::from_serialize(kind, &value).map_err(|e| HubError::exception("JsonException", e.to_string()))
                    })
                });
                Ok(values.boxed())
            }
            .boxed(),
        ))
    }
}
