//! Decodes the checked-in subtensor metadata and asserts the pallet and call indexes Platform
//! uses, and the runtime APIs it reads the metagraph with.

use frame_metadata::{RuntimeMetadata, RuntimeMetadataPrefixed};
use parity_scale_codec::Decode;

const METADATA: &[u8] = include_bytes!("../metadata/finney-spec393.scale");

#[test]
fn pallet_and_call_indexes() {
    assert_eq!(&METADATA[..4], b"meta");
    let mut bytes = METADATA;
    let prefixed = RuntimeMetadataPrefixed::decode(&mut bytes).expect("metadata decodes");
    assert!(bytes.is_empty(), "{} trailing bytes", bytes.len());
    let RuntimeMetadata::V16(md) = prefixed.1 else {
        panic!("expected metadata version 16");
    };
    let pallet = md
        .pallets
        .iter()
        .find(|p| p.name == "SubtensorModule")
        .expect("SubtensorModule pallet");
    use platform_chain::subtensor::call_index;
    assert_eq!(pallet.index, call_index::SUBTENSOR_PALLET);
    let calls_ty = pallet.calls.as_ref().expect("the pallet has calls").ty.id;
    let ty = md.types.resolve(calls_ty).expect("call type");
    let scale_info::TypeDef::Variant(v) = &ty.type_def else {
        panic!("calls are an enum")
    };
    let index = |name: &str| {
        v.variants
            .iter()
            .find(|x| x.name == name)
            .unwrap_or_else(|| panic!("no call {name}"))
            .index
    };
    assert_eq!(index("set_weights"), call_index::SET_WEIGHTS);
    assert_eq!(index("commit_weights"), call_index::COMMIT_WEIGHTS);
    assert_eq!(index("reveal_weights"), call_index::REVEAL_WEIGHTS);
    assert_eq!(
        index("commit_timelocked_weights"),
        call_index::COMMIT_TIMELOCKED_WEIGHTS
    );
    assert_eq!(index("set_mechanism_weights"), 119);
    // set_weights(netuid, dests, weights, version_key): the argument names Platform fills.
    let set_weights = v.variants.iter().find(|x| x.name == "set_weights").unwrap();
    let args: Vec<_> = set_weights
        .fields
        .iter()
        .map(|f| f.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(args, ["netuid", "dests", "weights", "version_key"]);
    let timelocked = v
        .variants
        .iter()
        .find(|x| x.name == "commit_timelocked_weights")
        .unwrap();
    let args: Vec<_> = timelocked
        .fields
        .iter()
        .map(|f| f.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        args,
        ["netuid", "commit", "reveal_round", "commit_reveal_version"]
    );

    let api = |api: &str, method: &str| {
        md.apis
            .iter()
            .find(|a| a.name == api)
            .unwrap_or_else(|| panic!("no runtime API {api}"))
            .methods
            .iter()
            .any(|m| m.name == method)
    };
    assert!(api("NeuronInfoRuntimeApi", "get_neurons_lite"));
    assert!(api("SubnetInfoRuntimeApi", "get_metagraph"));
}
