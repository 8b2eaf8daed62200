//! [`HubError`], what a hub method returns on failure, and the exact .NET error texts
//! (`ErrorMessageHelper.BuildErrorMessage`, protocol reference §4.5).

use std::borrow::Cow;
use std::fmt;

/// The error of a hub method, as .NET's exceptions: a [`HubError::HubException`] always reaches
/// the client with its message; any other error shows its type name and message only when
/// detailed errors are on.
///
/// Any `std::error::Error` converts into it (`?` works in hub methods); the type name shown is
/// the error type's last path segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubError {
    /// .NET's `HubException`: the message is meant for the client and always shown.
    HubException(String),
    /// Any other failure: shown as `<type_name>: <message>` only with detailed errors.
    Exception {
        /// The exception type name shown with detailed errors, e.g. `InvalidOperationException`.
        type_name: Cow<'static, str>,
        /// The message shown with detailed errors.
        message: String,
    },
}

impl HubError {
    /// A `HubException` whose message the client always sees.
    pub fn hub_exception(message: impl Into<String>) -> Self {
        HubError::HubException(message.into())
    }

    /// An error with an exception type name, shown to the client only with detailed errors.
    pub fn exception(type_name: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        HubError::Exception { type_name: type_name.into(), message: message.into() }
    }

    /// The type name as .NET would print it (`HubException` for [`HubError::HubException`]).
    pub fn type_name(&self) -> &str {
        match self {
            HubError::HubException(_) => "HubException",
            HubError::Exception { type_name, .. } => type_name,
        }
    }

    /// The message without the type name.
    pub fn message(&self) -> &str {
        match self {
            HubError::HubException(message) => message,
            HubError::Exception { message, .. } => message,
        }
    }

    /// Whether the client sees the details even without detailed errors.
    pub fn is_hub_exception(&self) -> bool {
        matches!(self, HubError::HubException(_))
    }
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.type_name(), self.message())
    }
}

impl<E: std::error::Error> From<E> for HubError {
    fn from(error: E) -> Self {
        let full = std::any::type_name::<E>();
        // `alloc::string::FromUtf8Error` → `FromUtf8Error`; generic parameters are dropped.
        let base = full.split('<').next().unwrap_or(full);
        let short = base.rsplit("::").next().unwrap_or(base);
        HubError::Exception { type_name: Cow::Owned(short.to_owned()), message: error.to_string() }
    }
}

/// `ErrorMessageHelper.BuildErrorMessage`: `<message> <Type>: <detail>` when detailed errors are
/// on or the error is a `HubException`, else `<message>` alone.
pub fn build_error_message(message: &str, error: &HubError, detailed: bool) -> String {
    if detailed || error.is_hub_exception() { format!("{message} {}: {}", error.type_name(), error.message()) } else { message.to_owned() }
}

/// `An unexpected error occurred invoking '<target>' on the server.`
pub fn invocation_error(target: &str) -> String {
    format!("An unexpected error occurred invoking '{target}' on the server.")
}

/// The `HubException` message .NET's invocation binder raises for a method that does not exist.
/// It surfaces as `Failed to invoke '<target>' due to an error on the server. HubException:
/// Method does not exist.` (always detailed, being a `HubException`), which is what the official
/// functional tests expect; .NET's dispatcher text `Unknown hub method '<target>'` is never
/// reached on the wire because binding fails first.
pub const METHOD_DOES_NOT_EXIST: &str = "Method does not exist.";

/// `Failed to invoke '<target>' due to an error on the server.`
pub fn binding_failed(target: &str) -> String {
    format!("Failed to invoke '{target}' due to an error on the server.")
}

/// `An error occurred on the server while streaming results.`
pub const STREAMING_ERROR: &str = "An error occurred on the server while streaming results.";

/// `Connection closed with an error.`
pub const CLOSED_WITH_ERROR: &str = "Connection closed with an error.";

/// `Handshake was canceled.` (timeout or oversized handshake).
pub const HANDSHAKE_CANCELED: &str = "Handshake was canceled.";

/// `An unexpected error occurred during connection handshake.`
pub const HANDSHAKE_UNEXPECTED: &str = "An unexpected error occurred during connection handshake.";

/// The binding error detail for a wrong argument count.
pub fn argument_count(provided: usize, expected: usize) -> String {
    format!("Invocation provides {provided} argument(s) but target expects {expected}.")
}

/// The binding error detail for arguments of the wrong type (.NET's text).
pub const ARGUMENT_TYPES: &str =
    "Error binding arguments. Make sure that the types of the provided values match the types of the hub method being invoked.";

/// `The client attempted to invoke the streaming '<target>' method with a non-streaming invocation.`
pub fn streaming_with_invocation(target: &str) -> String {
    format!("The client attempted to invoke the streaming '{target}' method with a non-streaming invocation.")
}

/// `The client attempted to invoke the non-streaming '<target>' method with a streaming invocation.`
pub fn non_streaming_with_stream_invocation(target: &str) -> String {
    format!("The client attempted to invoke the non-streaming '{target}' method with a streaming invocation.")
}

/// `Client sent N stream(s), Hub method expects M.` (a `HubException` message).
pub fn stream_count(sent: usize, expected: usize) -> String {
    format!("Client sent {sent} stream(s), Hub method expects {expected}.")
}

/// `Invocation ID '<id>' is already in use.`
pub fn invocation_id_in_use(id: &str) -> String {
    format!("Invocation ID '{id}' is already in use.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_exception_always_shows_details() {
        let error = HubError::hub_exception("Something bad");
        assert_eq!(
            build_error_message(&invocation_error("StreamingConcat"), &error, false),
            "An unexpected error occurred invoking 'StreamingConcat' on the server. HubException: Something bad"
        );
    }

    #[test]
    fn other_errors_show_details_only_when_detailed() {
        let error = HubError::exception("InvalidOperationException", "An error occurred.");
        assert_eq!(
            build_error_message(&invocation_error("ThrowException"), &error, true),
            "An unexpected error occurred invoking 'ThrowException' on the server. InvalidOperationException: An error occurred."
        );
        assert_eq!(
            build_error_message(&invocation_error("ThrowException"), &error, false),
            "An unexpected error occurred invoking 'ThrowException' on the server."
        );
    }

    #[test]
    fn std_errors_convert_with_their_type_name() {
        let parse = "x".parse::<i32>().unwrap_err();
        let error: HubError = parse.into();
        assert_eq!(error.type_name(), "ParseIntError");
        assert_eq!(error.message(), "invalid digit found in string");
    }
}
