//! Running hub methods: binding and mode checks with .NET's error texts, the per-client
//! parallel-invocation limit (queued in order; streaming and stream-consuming calls are not
//! limited), server-to-client streams with cancellation, and completions.
//!
//! An invocation first runs in the connection's task; one that has to wait gets a task of its own
//! (`start_here`). Nothing runs for an idle connection.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Waker};

use futures_util::{FutureExt, StreamExt};
use signalr_protocol::{CompletionMessage, CompletionResult, HubMessage, InvocationMessage, StreamItemMessage, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::builder::MethodOutput;
use super::connection::{HubConnectionState, Pace};
use super::context::HubCallContext;
use super::error::{self, HubError, build_error_message};

/// Most invocations a client may have waiting for a slot before the server stops reading from
/// it until one finishes.
pub(crate) const MAX_QUEUED_INVOCATIONS: usize = 1024;

/// A bound invocation, ready to run.
pub(crate) struct QueuedCall {
    invocation_id: Option<String>,
    target: String,
    output: MethodOutput,
    stream_ids: Vec<String>,
}

/// Sends a Completion for `invocation_id`.
async fn complete(state: &HubConnectionState, invocation_id: String, result: CompletionResult) {
    let message = HubMessage::Completion(CompletionMessage { headers: Default::default(), invocation_id, result });
    let _ = state.send_from_invocation(&message).await;
}

/// Sends a Completion with an error without waiting (from the receive path).
pub(crate) fn complete_error_now(state: &Arc<HubConnectionState>, invocation_id: String, error: String) {
    let message =
        HubMessage::Completion(CompletionMessage { headers: Default::default(), invocation_id, result: CompletionResult::Error(error) });
    if let Some(frame) = state.encode(&message) {
        let _ = state.send_numbered(frame, Pace::Prompt);
    }
}

/// Dispatches an Invocation (`streaming` false) or StreamInvocation (`streaming` true).
/// Never waits, except when too many invocations are queued (then the caller awaits
/// [`wait_for_queue_space`]).
pub(crate) fn dispatch(state: &Arc<HubConnectionState>, message: InvocationMessage, streaming: bool) {
    let shared = &state.shared;
    let detailed = shared.options.enable_detailed_errors;
    // .NET treats an empty id as none (non-blocking).
    let invocation_id = message.invocation_id.filter(|id| !id.is_empty());
    let target = message.target;
    let fail = |text: String| {
        if let Some(id) = &invocation_id {
            complete_error_now(state, id.clone(), text);
        } else {
            tracing::debug!(%target, error = %text, "non-blocking invocation failed");
        }
    };

    let Some(method) = shared.hub.method(&target).cloned() else {
        let error = HubError::hub_exception(error::METHOD_DOES_NOT_EXIST);
        return fail(build_error_message(&error::binding_failed(&target), &error, detailed));
    };
    if method.is_streaming() && !streaming {
        return fail(error::streaming_with_invocation(&target));
    }
    if !method.is_streaming() && streaming {
        return fail(error::non_streaming_with_stream_invocation(&target));
    }
    if message.stream_ids.len() != method.upload_count() {
        let error = HubError::hub_exception(error::stream_count(message.stream_ids.len(), method.upload_count()));
        return fail(build_error_message(&error::invocation_error(&target), &error, detailed));
    }
    if streaming {
        let id = invocation_id.as_deref().unwrap_or_default();
        if state.invocations(|i| i.streams.contains_key(id)) {
            return fail(error::invocation_id_in_use(id));
        }
    }

    let capacity = shared.options.stream_buffer_capacity;
    let mut senders = Vec::with_capacity(message.stream_ids.len());
    let mut receivers = Vec::with_capacity(message.stream_ids.len());
    for _ in &message.stream_ids {
        let (sender, receiver) = mpsc::channel(capacity);
        senders.push(sender);
        receivers.push(receiver);
    }
    let token = streaming.then(CancellationToken::new);
    let context = HubCallContext::new(state.clone(), token.clone());
    let output = match method.call(context, message.arguments, receivers) {
        Ok(output) => output,
        Err(bind) => {
            let error = HubError::exception("InvalidDataException", bind.to_string());
            return fail(build_error_message(&error::binding_failed(&target), &error, detailed));
        }
    };

    let unlimited = streaming || !message.stream_ids.is_empty();
    state.invocations(|invocations| {
        for (id, sender) in message.stream_ids.iter().zip(senders) {
            invocations.uploads.insert(id.clone(), sender);
        }
        if let (Some(token), Some(id)) = (&token, &invocation_id) {
            invocations.streams.insert(id.clone(), token.clone());
        }
    });
    let call = QueuedCall { invocation_id, target, output, stream_ids: message.stream_ids };
    if unlimited {
        tokio::spawn(run(state.clone(), call, token));
        return;
    }
    let limit = shared.options.maximum_parallel_invocations_per_client;
    let call = state.invocations(|invocations| {
        if invocations.running < limit {
            invocations.running += 1;
            Some(call)
        } else {
            invocations.queued.push_back(call);
            None
        }
    });
    if let Some(call) = call {
        start_here(run_slot(state.clone(), call));
    }
}

/// Polls an invocation once in the connection's own task and spawns it only if it has to wait.
///
/// Most hub methods finish in their first poll (a send to all, to a group, an answer computed
/// at once). Their Completion is then queued by the task that also writes the connection, and
/// leaves in the same turn; from a new task it would wait for that task's turn and then the
/// writer's, behind every other task of a busy node — a full round of a broadcast's writes,
/// which paced a caller with a few calls in flight (docs/benchmarks.md, "Broadcast burst").
/// A method that waits (for I/O, a client result, a lock) is spawned as before, so the
/// connection keeps reading meanwhile.
fn start_here(invocation: impl Future<Output = ()> + Send + 'static) {
    let mut invocation = Box::pin(invocation);
    // The first poll's waker is never used: if the invocation is pending, the spawned task
    // polls it again at once and registers its own.
    let mut cx = Context::from_waker(Waker::noop());
    if invocation.as_mut().poll(&mut cx).is_pending() {
        tokio::spawn(invocation);
    }
}

/// Whether the receive path should wait before dispatching more.
pub(crate) fn queue_is_full(state: &HubConnectionState) -> bool {
    state.invocations(|i| i.queued.len() >= MAX_QUEUED_INVOCATIONS)
}

/// Waits until the connection's invocation queue has room (or the connection closed).
pub(crate) async fn wait_for_queue_space(state: &HubConnectionState) {
    loop {
        let notified = state.shared.queue_space.notified();
        if !queue_is_full(state) || state.connection.is_closed() {
            return;
        }
        notified.await;
    }
}

/// Runs non-streaming invocations in one slot of the parallel limit, then the queued ones.
async fn run_slot(state: Arc<HubConnectionState>, mut call: QueuedCall) {
    loop {
        run(state.clone(), call, None).await;
        let next = state.invocations(|invocations| match invocations.queued.pop_front() {
            Some(next) => Some(next),
            None => {
                invocations.running = invocations.running.saturating_sub(1);
                None
            }
        });
        match next {
            Some(next) => {
                state.shared.queue_space.notify_waiters();
                call = next;
            }
            None => return,
        }
    }
}

/// Runs one invocation to its Completion.
async fn run(state: Arc<HubConnectionState>, call: QueuedCall, token: Option<CancellationToken>) {
    let detailed = state.shared.options.enable_detailed_errors;
    let QueuedCall { invocation_id, target, output, stream_ids } = call;
    match output {
        MethodOutput::Unary(future) => {
            let result = match AssertUnwindSafe(future).catch_unwind().await {
                Ok(result) => result,
                Err(panic) => Err(panic_error(panic)),
            };
            if let Some(id) = invocation_id {
                let completion = match result {
                    Ok(value) => CompletionResult::Result(value),
                    Err(error) => {
                        tracing::debug!(%target, %error, "hub method failed");
                        CompletionResult::Error(build_error_message(&error::invocation_error(&target), &error, detailed))
                    }
                };
                complete(&state, id, completion).await;
            }
        }
        MethodOutput::Stream(start) => {
            let token = token.unwrap_or_default();
            let id = invocation_id.unwrap_or_default();
            let result = run_stream(&state, &id, &target, start, &token, detailed).await;
            state.invocations(|i| i.streams.remove(&id));
            complete(&state, id, result).await;
        }
    }
    if !stream_ids.is_empty() {
        // Completes any upload stream the method did not drain.
        state.invocations(|invocations| {
            for id in &stream_ids {
                invocations.uploads.remove(id);
            }
        });
    }
}

async fn run_stream(
    state: &HubConnectionState,
    id: &str,
    target: &str,
    start: futures_util::future::BoxFuture<'static, Result<futures_util::stream::BoxStream<'static, Result<Value, HubError>>, HubError>>,
    token: &CancellationToken,
    detailed: bool,
) -> CompletionResult {
    // The method always runs up to its first await, even when the client cancelled before the
    // task started (as .NET invokes the method with an already-cancelled token): it may react
    // to the cancellation itself (the test server's InfiniteStream sends StreamCanceled).
    let started = tokio::select! {
        biased;
        started = AssertUnwindSafe(start).catch_unwind() => started.unwrap_or_else(|panic| Err(panic_error(panic))),
        _ = token.cancelled() => return CompletionResult::Void,
    };
    let mut stream = match started {
        Ok(stream) => stream,
        Err(error) => {
            return CompletionResult::Error(build_error_message(&error::invocation_error(target), &error, detailed));
        }
    };
    loop {
        let next = tokio::select! {
            biased;
            _ = token.cancelled() => return CompletionResult::Void,
            next = AssertUnwindSafe(stream.next()).catch_unwind() => next.unwrap_or_else(|panic| Some(Err(panic_error(panic)))),
        };
        match next {
            Some(Ok(item)) => {
                let message = HubMessage::StreamItem(StreamItemMessage { headers: Default::default(), invocation_id: id.to_owned(), item });
                if state.send_from_invocation(&message).await.is_err() {
                    return CompletionResult::Void;
                }
            }
            Some(Err(error)) => {
                return CompletionResult::Error(build_error_message(error::STREAMING_ERROR, &error, detailed));
            }
            None => return CompletionResult::Void,
        }
    }
}

/// A panicking hub method is reported like an unexpected exception.
fn panic_error(panic: Box<dyn std::any::Any + Send>) -> HubError {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "hub method panicked".to_owned());
    HubError::exception("Exception", message)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// An invocation that can finish does so before `start_here` returns: in the caller's task,
    /// with no task spawned (on this single-threaded runtime a spawned task could not have run).
    #[tokio::test]
    async fn an_invocation_that_can_finish_runs_in_the_callers_task() {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        start_here(async move { flag.store(true, Ordering::SeqCst) });
        assert!(done.load(Ordering::SeqCst));
    }

    /// One that has to wait gets a task of its own and finishes there once it can.
    #[tokio::test]
    async fn an_invocation_that_waits_is_spawned_and_finishes_later() {
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let (finished, mut finished_rx) = tokio::sync::oneshot::channel::<&str>();
        start_here(async move {
            let _ = released.await;
            let _ = finished.send("finished");
        });
        assert!(finished_rx.try_recv().is_err(), "finished before it was released");
        release.send(()).unwrap();
        let result = tokio::time::timeout(std::time::Duration::from_secs(10), finished_rx).await;
        assert_eq!(result.expect("the spawned invocation never ran").unwrap(), "finished");
    }
}
