//! ABI v1 host functions. Each charges fuel (a base cost plus a per-byte cost) before it does any
//! work, and bounds-checks every guest pointer: a bad pointer is a trap, never a host panic.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::{Caller, Linker, Memory, ResourceLimiter};

use crate::abi::{HOST_BYTE_FUEL, HOST_CALL_FUEL, HOST_MODULE};
use crate::policy::Policy;

/// Why a call ended early, as the host saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Fuel ran out inside a host call.
    OutOfFuel,
    /// `memory.grow` or `table.grow` beyond the policy.
    MemoryLimit,
    /// `output_write` with more than the policy allows.
    OutputTooLarge,
    /// `output_write` called twice.
    OutputTwice,
    /// A guest pointer or length outside memory.
    OutOfBounds,
    /// KV key, value or write count beyond the policy.
    KvLimit,
    /// The module called `abort` with this message.
    Abort(String),
}

/// Per-call host state; a fresh one for every evaluation.
pub struct HostState {
    pub(crate) input: Vec<u8>,
    pub(crate) output: Option<Vec<u8>>,
    pub(crate) snapshot: Arc<BTreeMap<Vec<u8>, Vec<u8>>>,
    pub(crate) writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    pub(crate) register: Vec<u8>,
    pub(crate) logs: Vec<String>,
    pub(crate) log_bytes: usize,
    pub(crate) logs_dropped: u32,
    pub(crate) assets: Arc<Vec<Vec<u8>>>,
    pub(crate) policy: Arc<Policy>,
    pub(crate) memory: Option<Memory>,
    pub(crate) fault: Option<Fault>,
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.policy.max_memory_pages as usize * 65_536 {
            self.fault = Some(Fault::MemoryLimit);
            return Err(wasmtime::Error::msg("memory limit"));
        }
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // Growth past the module's own declared maximum traps too, rather than returning -1,
        // so a grow bomb ends the call with `memory_limit` instead of spinning on failures.
        self.fault = Some(Fault::MemoryLimit);
        Err(wasmtime::Error::msg("memory limit"))
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.fault = Some(Fault::MemoryLimit);
        Err(wasmtime::Error::msg("table limit"))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.policy.max_table_elements as usize {
            self.fault = Some(Fault::MemoryLimit);
            return Err(wasmtime::Error::msg("table limit"));
        }
        Ok(true)
    }
}

type Ctx<'a> = Caller<'a, HostState>;

fn fail(caller: &mut Ctx<'_>, fault: Fault) -> wasmtime::Error {
    caller.data_mut().fault = Some(fault.clone());
    wasmtime::Error::msg(format!("{fault:?}"))
}

/// Charges the base cost of a host call; every host function does this first.
fn charge_call(caller: &mut Ctx<'_>) -> wasmtime::Result<()> {
    take_fuel(caller, HOST_CALL_FUEL)
}

/// Charges for `bytes` moved; called after the range is checked and before the copy.
fn charge_bytes(caller: &mut Ctx<'_>, bytes: u64) -> wasmtime::Result<()> {
    take_fuel(caller, bytes.saturating_mul(HOST_BYTE_FUEL))
}

fn take_fuel(caller: &mut Ctx<'_>, cost: u64) -> wasmtime::Result<()> {
    // Unmetered engines (overhead measurement only) have no fuel to charge.
    let Ok(fuel) = caller.get_fuel() else {
        return Ok(());
    };
    if fuel < cost {
        caller.set_fuel(0)?;
        return Err(fail(caller, Fault::OutOfFuel));
    }
    caller.set_fuel(fuel - cost)?;
    Ok(())
}

/// The guest range `[ptr, ptr + len)`, checked against memory.
fn range(caller: &mut Ctx<'_>, ptr: i32, len: i32) -> wasmtime::Result<std::ops::Range<usize>> {
    let mem = caller
        .data()
        .memory
        .expect("memory is set at instantiation");
    let (start, len) = (ptr as u32 as usize, len as u32 as usize);
    match start.checked_add(len) {
        Some(end) if end <= mem.data_size(&*caller) => Ok(start..end),
        _ => Err(fail(caller, Fault::OutOfBounds)),
    }
}

/// Checks, charges for and copies `[ptr, ptr + len)` out of guest memory.
fn read(caller: &mut Ctx<'_>, ptr: i32, len: i32) -> wasmtime::Result<Vec<u8>> {
    let r = range(caller, ptr, len)?;
    charge_bytes(caller, r.len() as u64)?;
    let mem = caller.data().memory.expect("memory is set");
    Ok(mem.data(&*caller)[r].to_vec())
}

/// Copies `source[offset..offset+len]` (clamped to the source) into guest memory at `ptr`.
fn copy_out(
    caller: &mut Ctx<'_>,
    ptr: i32,
    offset: i32,
    len: i32,
    source: impl Fn(&HostState) -> &[u8],
) -> wasmtime::Result<i32> {
    let source_len = source(caller.data()).len();
    let offset = (offset as u32 as usize).min(source_len);
    let n = (source_len - offset).min(len as u32 as usize);
    charge_call(caller)?;
    let r = range(caller, ptr, n as i32)?;
    charge_bytes(caller, n as u64)?;
    let (mem, state) = {
        let mem = caller.data().memory.expect("memory is set");
        mem.data_and_store_mut(&mut *caller)
    };
    mem[r].copy_from_slice(&source(state)[offset..offset + n]);
    Ok(n as i32)
}

fn count_write(caller: &mut Ctx<'_>, key: &[u8]) -> wasmtime::Result<()> {
    let state = caller.data();
    if key.len() > state.policy.max_key_bytes as usize
        || (!state.writes.contains_key(key)
            && state.writes.len() >= state.policy.max_kv_writes as usize)
    {
        return Err(fail(caller, Fault::KvLimit));
    }
    Ok(())
}

/// Registers the ABI v1 host functions.
pub fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        HOST_MODULE,
        "input_read",
        |mut c: Ctx<'_>, ptr: i32, offset: i32, len: i32| {
            copy_out(&mut c, ptr, offset, len, |s| &s.input)
        },
    )?;
    linker.func_wrap(
        HOST_MODULE,
        "output_write",
        |mut c: Ctx<'_>, ptr: i32, len: i32| {
            charge_call(&mut c)?;
            if c.data().output.is_some() {
                return Err(fail(&mut c, Fault::OutputTwice));
            }
            if len as u32 > c.data().policy.max_output_bytes {
                return Err(fail(&mut c, Fault::OutputTooLarge));
            }
            let bytes = read(&mut c, ptr, len)?;
            c.data_mut().output = Some(bytes);
            Ok(0i32)
        },
    )?;
    linker.func_wrap(
        HOST_MODULE,
        "kv_get",
        |mut c: Ctx<'_>, key_ptr: i32, key_len: i32| {
            charge_call(&mut c)?;
            let key = read(&mut c, key_ptr, key_len)?;
            let state = c.data();
            let value = match state.writes.get(&key) {
                Some(v) => v.clone(),
                None => state.snapshot.get(&key).cloned(),
            };
            let found = value.as_ref().map_or(-1, |v| v.len() as i32);
            charge_bytes(&mut c, value.as_ref().map_or(0, |v| v.len() as u64))?;
            c.data_mut().register = value.unwrap_or_default();
            Ok(found)
        },
    )?;
    linker.func_wrap(
        HOST_MODULE,
        "register_read",
        |mut c: Ctx<'_>, ptr: i32, offset: i32, len: i32| {
            copy_out(&mut c, ptr, offset, len, |s| &s.register)
        },
    )?;
    linker.func_wrap(
        HOST_MODULE,
        "kv_put",
        |mut c: Ctx<'_>, kp: i32, kl: i32, vp: i32, vl: i32| {
            charge_call(&mut c)?;
            if vl as u32 > c.data().policy.max_value_bytes {
                return Err(fail(&mut c, Fault::KvLimit));
            }
            let key = read(&mut c, kp, kl)?;
            count_write(&mut c, &key)?;
            let value = read(&mut c, vp, vl)?;
            c.data_mut().writes.insert(key, Some(value));
            Ok(0i32)
        },
    )?;
    linker.func_wrap(
        HOST_MODULE,
        "kv_delete",
        |mut c: Ctx<'_>, kp: i32, kl: i32| {
            charge_call(&mut c)?;
            let key = read(&mut c, kp, kl)?;
            count_write(&mut c, &key)?;
            c.data_mut().writes.insert(key, None);
            Ok(0i32)
        },
    )?;
    linker.func_wrap(HOST_MODULE, "log", |mut c: Ctx<'_>, ptr: i32, len: i32| {
        charge_call(&mut c)?;
        let bytes = read(&mut c, ptr, len)?;
        let state = c.data_mut();
        if state.logs.len() >= state.policy.max_log_entries as usize
            || state.log_bytes + bytes.len() > state.policy.max_log_bytes as usize
        {
            state.logs_dropped += 1;
            return Ok(1i32);
        }
        state.log_bytes += bytes.len();
        state
            .logs
            .push(String::from_utf8_lossy(&bytes).into_owned());
        Ok(0i32)
    })?;
    linker.func_wrap(
        HOST_MODULE,
        "abort",
        |mut c: Ctx<'_>, ptr: i32, len: i32| -> wasmtime::Result<()> {
            charge_call(&mut c)?;
            let bytes = read(&mut c, ptr, len.clamp(0, 1024))?;
            Err(fail(
                &mut c,
                Fault::Abort(String::from_utf8_lossy(&bytes).into_owned()),
            ))
        },
    )?;
    linker.func_wrap(
        HOST_MODULE,
        "asset_read",
        |mut c: Ctx<'_>, index: i32, ptr: i32, offset: i32, len: i32| {
            if (index as u32 as usize) >= c.data().assets.len() {
                charge_call(&mut c)?;
                return Ok(-1i32);
            }
            let i = index as u32 as usize;
            copy_out(&mut c, ptr, offset, len, move |s| &s.assets[i])
        },
    )?;
    Ok(())
}
