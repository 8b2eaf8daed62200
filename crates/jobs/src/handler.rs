//! Job handlers: registered by stable string name, with a serde-typed payload.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use serde::de::DeserializeOwned;

use crate::context::JobContext;
use crate::error::JobError;
use crate::retry::RetryPolicy;

/// The future a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send + 'static>>;

/// A job handler, registered on a worker under [`JobHandler::name`].
///
/// Most code uses [`handler_fn`] instead of implementing this trait.
pub trait JobHandler: Send + Sync + 'static {
    /// The stable job name it handles, e.g. `"provision-tenant@1"`.
    fn name(&self) -> &str;
    /// Retry policy for this job type (Hangfire's by default).
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::hangfire()
    }
    /// Runs one execution with the stored JSON payload.
    fn run(&self, ctx: JobContext, payload: &str) -> HandlerFuture;
}

/// A handler made from an async function taking the deserialized payload.
pub struct FnHandler<P, F> {
    name: String,
    policy: RetryPolicy,
    f: F,
    _payload: PhantomData<fn() -> P>,
}

/// Makes a handler for job `name` from `f(ctx, payload)`. A payload that does not deserialize
/// into `P` fails the job permanently with [`JobError::PayloadMismatch`].
///
/// ```no_run
/// use jobs::{JobContext, handler_fn};
/// #[derive(serde::Deserialize)]
/// struct ProvisionTenant { tenant_id: String }
/// let h = handler_fn("provision-tenant@1", |ctx: JobContext, p: ProvisionTenant| async move {
///     ctx.log(format!("provisioning {}", p.tenant_id)).await?;
///     Ok(())
/// });
/// ```
pub fn handler_fn<P, F, Fut>(name: impl Into<String>, f: F) -> FnHandler<P, F>
where
    P: DeserializeOwned + Send + 'static,
    F: Fn(JobContext, P) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    FnHandler { name: name.into(), policy: RetryPolicy::hangfire(), f, _payload: PhantomData }
}

impl<P, F> FnHandler<P, F> {
    /// Sets this job type's retry policy.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }
}

impl<P, F, Fut> JobHandler for FnHandler<P, F>
where
    P: DeserializeOwned + Send + 'static,
    F: Fn(JobContext, P) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn retry_policy(&self) -> RetryPolicy {
        self.policy.clone()
    }

    fn run(&self, ctx: JobContext, payload: &str) -> HandlerFuture {
        match serde_json::from_str::<P>(payload) {
            Ok(p) => Box::pin((self.f)(ctx, p)),
            Err(e) => {
                let err = JobError::PayloadMismatch { job_id: ctx.job_id(), name: self.name.clone(), reason: e.to_string() };
                Box::pin(std::future::ready(Err(err)))
            }
        }
    }
}
