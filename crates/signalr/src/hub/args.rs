//! Binding wire arguments to Rust values: [`HubArgs`] is implemented for tuples (up to 10
//! elements) of `serde::de::DeserializeOwned` types, and [`OutgoingArgs`] turns a tuple of
//! `Serialize` values into wire arguments.

use serde::Serialize;
use serde::de::DeserializeOwned;
use signalr_protocol::Value;
use signalr_protocol::value::ValueKind;

use super::error;

/// Why the arguments of an invocation could not be bound to a method's parameters; the text is
/// .NET's `InvalidDataException` message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    /// `Invocation provides N argument(s) but target expects M.`
    #[error("{}", error::argument_count(*.provided, *.expected))]
    Count {
        /// Arguments sent.
        provided: usize,
        /// Parameters declared.
        expected: usize,
    },
    /// An argument does not deserialize into its parameter type.
    #[error("{}", error::ARGUMENT_TYPES)]
    Types {
        /// Which argument (0-based) and the serde message, for logs.
        detail: String,
    },
}

/// The parameters of a hub method: a tuple of deserializable types, bound from the invocation's
/// arguments (stream parameters excluded).
pub trait HubArgs: Sized + Send + 'static {
    /// The number of parameters.
    const COUNT: usize;
    /// Binds the arguments; the count is checked first, as .NET does.
    fn bind(arguments: Vec<Value>) -> Result<Self, BindError>;
}

impl HubArgs for () {
    const COUNT: usize = 0;
    fn bind(arguments: Vec<Value>) -> Result<Self, BindError> {
        if arguments.is_empty() { Ok(()) } else { Err(BindError::Count { provided: arguments.len(), expected: 0 }) }
    }
}

macro_rules! impl_hub_args {
    ($count:expr; $($name:ident),+) => {
        impl<$($name: DeserializeOwned + Send + 'static),+> HubArgs for ($($name,)+) {
            const COUNT: usize = $count;
            fn bind(arguments: Vec<Value>) -> Result<Self, BindError> {
                if arguments.len() != $count {
                    return Err(BindError::Count { provided: arguments.len(), expected: $count });
                }
                let mut values = arguments.into_iter().enumerate();
                Ok(($(
                    {
                        let (index, value) = values.next().expect("count checked");
                        value.deserialize::<$name>().map_err(|e| BindError::Types {
                            detail: format!("argument {index}: {e}"),
                        })?
                    },
                )+))
            }
        }
    };
}

impl_hub_args!(1; A1);
impl_hub_args!(2; A1, A2);
impl_hub_args!(3; A1, A2, A3);
impl_hub_args!(4; A1, A2, A3, A4);
impl_hub_args!(5; A1, A2, A3, A4, A5);
impl_hub_args!(6; A1, A2, A3, A4, A5, A6);
impl_hub_args!(7; A1, A2, A3, A4, A5, A6, A7);
impl_hub_args!(8; A1, A2, A3, A4, A5, A6, A7, A8);
impl_hub_args!(9; A1, A2, A3, A4, A5, A6, A7, A8, A9);
impl_hub_args!(10; A1, A2, A3, A4, A5, A6, A7, A8, A9, A10);

/// Arguments sent to clients: `()` for none, or a tuple such as `("text",)` or `(a, b)`.
///
/// Anything that serializes as a sequence works; a single non-tuple value is sent as one
/// argument.
pub trait OutgoingArgs: Serialize {
    /// The wire arguments in the given value form.
    fn to_values(&self, kind: ValueKind) -> Result<Vec<Value>, signalr_protocol::ProtocolError> {
        let whole = Value::from_serialize(kind, self)?;
        Ok(split_arguments(whole))
    }
}

impl<T: Serialize + ?Sized> OutgoingArgs for T {}

/// Splits a serialized tuple into its elements (unit becomes no arguments).
fn split_arguments(whole: Value) -> Vec<Value> {
    match whole {
        Value::Json(serde_json::Value::Array(items)) => items.into_iter().map(Value::Json).collect(),
        Value::Json(serde_json::Value::Null) => Vec::new(),
        Value::MsgPack(rmpv::Value::Array(items)) => items.into_iter().map(Value::MsgPack).collect(),
        Value::MsgPack(rmpv::Value::Nil) => Vec::new(),
        single => vec![single],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_a_tuple() {
        let args = vec![Value::Json(serde_json::json!("a")), Value::Json(serde_json::json!(2))];
        let (text, number): (String, i32) = HubArgs::bind(args).unwrap();
        assert_eq!((text.as_str(), number), ("a", 2));
    }

    #[test]
    fn counts_first() {
        let args = vec![Value::Json(serde_json::json!("a"))];
        let error = <(String, i32)>::bind(args).unwrap_err();
        assert_eq!(error.to_string(), "Invocation provides 1 argument(s) but target expects 2.");
    }

    #[test]
    fn wrong_types() {
        let args = vec![Value::Json(serde_json::json!({"x": 1}))];
        let error = <(i32,)>::bind(args).unwrap_err();
        assert_eq!(error.to_string(), error::ARGUMENT_TYPES);
    }

    #[test]
    fn outgoing_tuples_split() {
        let values = ("a", 1).to_values(ValueKind::Json).unwrap();
        assert_eq!(values, vec![Value::Json(serde_json::json!("a")), Value::Json(serde_json::json!(1))]);
        assert!(().to_values(ValueKind::MsgPack).unwrap().is_empty());
    }
}
