//! The Redis backplane's .NET envelope format on raw bytes, as every node reads what arrives on
//! its channels: invocations (with their per-protocol frames), group commands, acks and forwarded
//! client results. A record that reads writes back to bytes that read to the same record.
#![no_main]

use bytes::Bytes;
use diquis_fuzz::{MAX_MESSAGE, parse_stream, protocols};
use libfuzzer_sys::fuzz_target;
use signalr_redis::fuzzing::parse_forwarded_completion;
use signalr_redis::protocol::{
    read_ack, read_completion, read_group_command, read_invocation, write_ack, write_completion, write_group_command, write_invocation,
};

fuzz_target!(|data: &[u8]| {
    let payload = Bytes::copy_from_slice(data);

    if let Ok(invocation) = read_invocation(&payload) {
        let messages: Vec<(&str, &[u8])> = invocation.messages.iter().map(|(name, frame)| (name.as_str(), &frame[..])).collect();
        let route = invocation.client_result.as_ref().map(|r| (r.invocation_id.as_str(), r.return_channel.as_str()));
        let written = write_invocation(&invocation.excluded_connection_ids, &messages, route);
        assert_eq!(read_invocation(&Bytes::from(written)).expect("a written invocation reads"), invocation);
        // A .NET client of this node reads each frame with its protocol.
        for (name, frame) in &invocation.messages {
            for protocol in protocols() {
                if protocol.name() == name {
                    parse_stream(protocol, frame, frame.len(), MAX_MESSAGE);
                }
            }
        }
    }

    if let Ok(command) = read_group_command(&payload) {
        let written = write_group_command(&command);
        assert_eq!(read_group_command(&Bytes::from(written)).expect("a written group command reads"), command);
    }

    if let Ok(ack) = read_ack(&payload) {
        assert_eq!(read_ack(&Bytes::from(write_ack(ack.id))).expect("a written ack reads"), ack);
    }

    if let Ok(forwarded) = read_completion(&payload) {
        let written = write_completion(&forwarded.protocol_name, &forwarded.frame);
        assert_eq!(read_completion(&Bytes::from(written)).expect("a written completion reads"), forwarded);
        let _ = parse_forwarded_completion(&forwarded.protocol_name, &forwarded.frame, MAX_MESSAGE);
    }
});
