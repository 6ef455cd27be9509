//! An interface whose method names clippy has opinions about (`len`
//! without `is_empty`, `new` not returning `Self`, `into_*` and `from_*`
//! taking `&self`, `iter` returning no iterator): the expansion allows
//! those lints, so the workspace's `cargo clippy --all-targets -- -D
//! warnings` passes on this file. (`rrpc/tests/ui/pass/` checks rustc's
//! own warnings on such names.)

use rrpc::RpcResult;

#[rrpc::interface]
pub trait Collection {
    fn len(&self) -> RpcResult<u64>;
    fn new(&self) -> RpcResult<u64>;
    fn into_inner(&self) -> RpcResult<u64>;
    fn from_raw(&self, raw: u64) -> RpcResult<u64>;
    fn to_owned(&self) -> RpcResult<u64>;
    fn next(&self) -> RpcResult<Option<u64>>;
    fn iter(&self) -> RpcResult<u64>;
    fn default(&self) -> RpcResult<u64>;
    async fn as_mut(&self) -> RpcResult<u64>;
}

/// An implementation, so that the names are also checked where they are
/// implemented.
struct Numbers;

impl Collection for Numbers {
    fn len(&self) -> RpcResult<u64> {
        Ok(3)
    }
    fn new(&self) -> RpcResult<u64> {
        Ok(0)
    }
    fn into_inner(&self) -> RpcResult<u64> {
        Ok(1)
    }
    fn from_raw(&self, raw: u64) -> RpcResult<u64> {
        Ok(raw)
    }
    fn to_owned(&self) -> RpcResult<u64> {
        Ok(2)
    }
    fn next(&self) -> RpcResult<Option<u64>> {
        Ok(None)
    }
    fn iter(&self) -> RpcResult<u64> {
        Ok(4)
    }
    fn default(&self) -> RpcResult<u64> {
        Ok(5)
    }
    fn as_mut(&self) -> rrpc::RpcFuture<'_, u64> {
        rrpc::RpcFuture::new(async { Ok(6) })
    }
}

#[test]
fn an_implementation_answers_under_any_name() {
    let numbers: &dyn Collection = &Numbers;
    assert_eq!(numbers.len(), Ok(3));
    assert_eq!(numbers.from_raw(7), Ok(7));
}
