//! Phase: what kind of request this is, as far as retries are concerned.
//!
//! The chain module in `common` classifies each method; a request is a write
//! as soon as any of its calls is one, because a batch travels as one body
//! and resending it would resend the write.

use meridian_common::chain::{ChainKind, MethodClass};

use super::parse::Parsed;

/// The class of the whole request.
pub fn request_class(chain: ChainKind, parsed: &Parsed<'_>) -> MethodClass {
    let chain = chain.chain();
    if parsed
        .calls()
        .iter()
        .any(|c| chain.method_class(&c.method) == MethodClass::Write)
    {
        MethodClass::Write
    } else {
        // Subscriptions over HTTP are left to the node to refuse; for
        // retries they behave like reads.
        MethodClass::Read
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::parse::parse;

    #[test]
    fn a_write_anywhere_makes_a_write() {
        let read = parse(br#"{"jsonrpc":"2.0","id":1,"method":"eth_call"}"#, 10).unwrap();
        assert_eq!(request_class(ChainKind::Evm, &read), MethodClass::Read);
        let batch = parse(
            br#"[{"jsonrpc":"2.0","id":1,"method":"eth_call"},{"jsonrpc":"2.0","id":2,"method":"eth_sendRawTransaction"}]"#,
            10,
        )
        .unwrap();
        assert_eq!(request_class(ChainKind::Evm, &batch), MethodClass::Write);
    }
}
