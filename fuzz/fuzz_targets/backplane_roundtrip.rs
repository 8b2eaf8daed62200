//! Structured backplane records (any strings, frames, ids, actions and sizes) written with the
//! envelope writer read back to the same record; an invocation carrying hub messages written with
//! both protocols hands each protocol's frame back to a message equal to the original.
#![no_main]

use arbitrary::Unstructured;
use bytes::{Bytes, BytesMut};
use diquis_fuzz::{assert_messages_eq, carried_by, hub_message, to_msgpack};
use libfuzzer_sys::fuzz_target;
use signalr_protocol::{HubMessage, HubProtocol, JsonHubProtocol, MessagePackHubProtocol};
use signalr_redis::protocol::{
    Ack, ClientResultRoute, GroupAction, GroupCommand, Invocation, read_ack, read_completion, read_group_command, read_invocation,
    write_ack, write_completion, write_group_command, write_invocation,
};

fn check(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    match u.int_in_range(0..=4)? {
        0 => {
            let excluded: Vec<String> = u.arbitrary()?;
            let messages: Vec<(String, Vec<u8>)> = u.arbitrary()?;
            let route: Option<(String, String)> = u.arbitrary()?;
            let borrowed: Vec<(&str, &[u8])> = messages.iter().map(|(n, f)| (n.as_str(), &f[..])).collect();
            let written = write_invocation(&excluded, &borrowed, route.as_ref().map(|(i, c)| (i.as_str(), c.as_str())));
            let read = read_invocation(&Bytes::from(written)).expect("a written invocation reads");
            let expected = Invocation {
                excluded_connection_ids: excluded,
                messages: messages.into_iter().map(|(n, f)| (n, Bytes::from(f))).collect(),
                client_result: route.map(|(invocation_id, return_channel)| ClientResultRoute { invocation_id, return_channel }),
            };
            assert_eq!(read, expected);
        }
        1 => {
            let command = GroupCommand {
                id: u.arbitrary()?,
                server_name: u.arbitrary()?,
                action: GroupAction::from_byte(u.arbitrary()?),
                group_name: u.arbitrary()?,
                connection_id: u.arbitrary()?,
            };
            assert_eq!(read_group_command(&Bytes::from(write_group_command(&command))).expect("reads"), command);
        }
        2 => {
            let id: i32 = u.arbitrary()?;
            assert_eq!(read_ack(&Bytes::from(write_ack(id))).expect("reads"), Ack { id });
        }
        3 => {
            let name: String = u.arbitrary()?;
            let frame: Vec<u8> = u.arbitrary()?;
            let read = read_completion(&Bytes::from(write_completion(&name, &frame))).expect("reads");
            assert_eq!((read.protocol_name.as_str(), &read.frame[..]), (name.as_str(), &frame[..]));
        }
        _ => {
            // What a node publishes for a hub message: one frame per protocol.
            let message = hub_message(u)?;
            let packed = to_msgpack(&message);
            let mut json = Vec::new();
            let mut msgpack = Vec::new();
            JsonHubProtocol.write_message(&message, &mut json).expect("JSON values write");
            MessagePackHubProtocol.write_message(&packed, &mut msgpack).expect("MessagePack values write");
            let written = write_invocation::<&str>(&[], &[("json", &json), ("messagepack", &msgpack)], None);
            let read = read_invocation(&Bytes::from(written)).expect("reads");
            for ((name, frame), (protocol, expected)) in read
                .messages
                .iter()
                .zip([(&JsonHubProtocol as &dyn HubProtocol, &message), (&MessagePackHubProtocol as &dyn HubProtocol, &packed)])
            {
                assert_eq!(name, protocol.name());
                let mut buf = BytesMut::from(&frame[..]);
                let parsed: HubMessage = protocol.parse_message(&mut buf, usize::MAX).expect("parses").expect("whole");
                assert_messages_eq(&carried_by(protocol, expected), &parsed);
            }
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = check(&mut Unstructured::new(data));
});
