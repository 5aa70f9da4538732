//! Search filters from the wire: arbitrary bytes decoded as a
//! `quarry.v1.Filter`, converted (which validates), then evaluated against
//! metadata. Invalid filters are errors naming the field; valid ones match
//! or not; nothing panics.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use quarry::proto;
use quarry_core::MetaValue;

fuzz_target!(|data: &[u8]| {
    let Ok(wire) = proto::Filter::decode(data) else {
        return;
    };
    match quarry::grpc::filter_from_proto(wire, "filter") {
        Ok(filter) => {
            let metadata: BTreeMap<String, MetaValue> = BTreeMap::from([
                ("lang".to_owned(), MetaValue::String("en".into())),
                ("year".to_owned(), MetaValue::Int(2024)),
                ("score".to_owned(), MetaValue::Double(0.5)),
                ("draft".to_owned(), MetaValue::Bool(false)),
                (
                    "tags".to_owned(),
                    MetaValue::StringList(vec!["a".into(), "b".into()]),
                ),
            ]);
            let _ = filter.matches(&metadata);
        }
        Err(e) => assert!(e.to_string().starts_with("filter"), "{e}"),
    }
});
