//! The host side of the proxy-wasm ABI: the functions a plugin imports,
//! and the state they work on ([`HostState`], one per instance).
//!
//! # Memory
//!
//! A plugin hands the host (pointer, length) pairs into its linear
//! memory; a pointer or length out of bounds answers
//! [`Status::InvalidMemoryAccess`], never a host panic. To return bytes
//! (a header value, a body, a property), the host asks the plugin for
//! memory with its exported `malloc` (the AssemblyScript SDK) or
//! `proxy_on_memory_allocate` (ABI 0.2.1), copies the bytes there and
//! writes the address and length where the plugin said. An empty value is
//! returned as (0, 0), as Envoy's host does; a `proxy_get_buffer_bytes`
//! of nothing answers `Ok` and writes nothing, as Envoy's does.
//!
//! # What the calls see
//!
//! [`HostState`] holds copies of the request's and response's header maps
//! and the body pieces the stream filter (`vm`) put there before
//! the call; the filter writes changes back after it. Header maps carry
//! the pseudo-headers `:method`, `:path` (requests) and `:status`
//! (responses) as Envoy's do; of those only `:status` can be changed.
//! Framing headers (`content-length`, `transfer-encoding`, …) can be read
//! and the calls that change them answer `Ok`, but the change is dropped:
//! baton frames each hop itself (see `filter::http`).
//!
//! # Properties
//!
//! `proxy_get_property` answers `source.address`, `source.port`,
//! `destination.address`, `destination.port`, `request.path`,
//! `request.url_path`, `request.method`, `listener_name`, `route_name`,
//! `plugin_name`, `plugin_root_id` and `plugin_vm_id`; any other path
//! answers [`Status::NotFound`]. The request's properties are found only
//! during a request (not in `proxy_on_tick` or the root context's
//! start). `route_name` is the `name` of the HTTP route the request
//! matched as it arrived, the empty string when the route has none (as
//! Envoy answers); outside a request it is not found, as in Envoy's root
//! context.
//!
//! # Not implemented
//!
//! Any import not listed in [`HOST`] — or listed but imported with
//! another signature — is given a stub that answers
//! [`Status::Unimplemented`] (or zeros), so a module that merely links
//! `proxy_http_call`, `proxy_grpc_*`, `proxy_set_property`,
//! `proxy_call_foreign_function` and the like still loads (the stubs are
//! made by [`super::linker`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use wasmi::{Caller, Func, FuncType, Linker, Memory, Val, ValType};

use super::abi::{self, BufferType, MapType, Status};
use super::shared::{Ready, shared};
use crate::filter::http::LocalResponse;
use crate::telemetry::plugin::{self as metrics, Kind};

/// What every instance of a plugin shares.
#[derive(Debug)]
pub(crate) struct Info {
    /// Its name in logs and metrics: the root id, or the file's stem.
    pub(crate) name: String,
    pub(crate) root_id: String,
    pub(crate) config: Vec<u8>,
    /// `proxy_set_tick_period_milliseconds` (0: no ticks).
    pub(crate) tick_ms: AtomicU32,
    /// Told when `tick_ms` changes.
    pub(crate) tick_changed: tokio::sync::Notify,
    /// The queues it registered that got items (see [`super::shared`]).
    pub(crate) queues: Arc<Ready>,
}

/// What a request's properties are made of.
#[derive(Debug, Default, Clone)]
pub(crate) struct Props {
    pub(crate) source: Option<SocketAddr>,
    pub(crate) destination: Option<SocketAddr>,
    pub(crate) listener: Option<Arc<str>>,
    pub(crate) method: String,
    pub(crate) path: String,
    /// The matched route's `name` (empty without one).
    pub(crate) route: String,
}

/// One instance's host-side state.
#[derive(Debug)]
pub(crate) struct HostState {
    pub(crate) info: Arc<Info>,
    pub(crate) memory: Option<Memory>,
    pub(crate) malloc: Option<Func>,
    /// By [`MapType`]: request headers, request trailers, response
    /// headers, response trailers.
    pub(crate) maps: [Vec<(String, Vec<u8>)>; 4],
    /// The request body and the response body, as far as the plugin is
    /// shown them.
    pub(crate) bodies: [BytesMut; 2],
    pub(crate) end_of_stream: [bool; 2],
    /// What `proxy_send_local_response` asked for.
    pub(crate) local: Option<LocalResponse>,
    pub(crate) props: Props,
    /// What the plugin wrote to stdout and stderr past its last newline
    /// (see the `wasi` module).
    pub(crate) output: [Vec<u8>; 2],
}

impl HostState {
    pub(crate) fn new(info: Arc<Info>) -> HostState {
        HostState {
            info,
            memory: None,
            malloc: None,
            maps: Default::default(),
            bodies: Default::default(),
            end_of_stream: [false; 2],
            local: None,
            props: Props::default(),
            output: Default::default(),
        }
    }

    /// Forgets the last request.
    pub(crate) fn reset(&mut self) {
        for map in &mut self.maps {
            map.clear();
        }
        for body in &mut self.bodies {
            body.clear();
        }
        self.end_of_stream = [false; 2];
        self.local = None;
        self.props = Props::default();
    }
}

/// Why a host call did not answer `Ok`: a status for the plugin, or a
/// trap (the plugin's `malloc` trapped or ran out of fuel, or it exited).
enum HostError {
    Status(Status),
    Trap(wasmi::Error),
}

impl From<Status> for HostError {
    fn from(status: Status) -> HostError {
        HostError::Status(status)
    }
}

type HostResult = Result<(), HostError>;
type Ctx<'a> = Caller<'a, HostState>;

/// The answer a host function gives the plugin.
fn done(result: HostResult) -> Result<i32, wasmi::Error> {
    match result {
        Ok(()) => Ok(Status::Ok as i32),
        Err(HostError::Status(s)) => Ok(s as i32),
        Err(HostError::Trap(e)) => Err(e),
    }
}

// === memory ===

fn memory(c: &Ctx<'_>) -> Result<Memory, HostError> {
    c.data()
        .memory
        .ok_or(HostError::Status(Status::InvalidMemoryAccess))
}

fn range(ptr: i32, len: i32) -> Result<std::ops::Range<usize>, HostError> {
    let start = ptr as u32 as usize;
    let end = start
        .checked_add(len as u32 as usize)
        .ok_or(Status::InvalidMemoryAccess)?;
    Ok(start..end)
}

fn read(c: &Ctx<'_>, ptr: i32, len: i32) -> Result<Vec<u8>, HostError> {
    let memory = memory(c)?;
    memory
        .data(c)
        .get(range(ptr, len)?)
        .map(<[u8]>::to_vec)
        .ok_or(HostError::Status(Status::InvalidMemoryAccess))
}

fn read_str(c: &Ctx<'_>, ptr: i32, len: i32) -> Result<String, HostError> {
    String::from_utf8(read(c, ptr, len)?).map_err(|_| HostError::Status(Status::BadArgument))
}

fn write(c: &mut Ctx<'_>, ptr: i32, bytes: &[u8]) -> HostResult {
    let memory = memory(c)?;
    let len = i32::try_from(bytes.len()).map_err(|_| Status::InvalidMemoryAccess)?;
    memory
        .data_mut(&mut *c)
        .get_mut(range(ptr, len)?)
        .ok_or(HostError::Status(Status::InvalidMemoryAccess))?
        .copy_from_slice(bytes);
    Ok(())
}

fn write_u32(c: &mut Ctx<'_>, ptr: i32, value: u32) -> HostResult {
    write(c, ptr, &value.to_le_bytes())
}

/// Returns `bytes` to the plugin: in memory it allocates, the address at
/// `ptr_ptr` and the length at `size_ptr`.
fn copy_out(c: &mut Ctx<'_>, bytes: &[u8], ptr_ptr: i32, size_ptr: i32) -> HostResult {
    if bytes.is_empty() {
        write_u32(c, ptr_ptr, 0)?;
        return write_u32(c, size_ptr, 0);
    }
    let len = i32::try_from(bytes.len()).map_err(|_| Status::BadArgument)?;
    let malloc = c.data().malloc.ok_or(Status::InvalidMemoryAccess)?;
    let mut out = [Val::I32(0)];
    malloc
        .call(&mut *c, &[Val::I32(len)], &mut out)
        .map_err(HostError::Trap)?;
    let address = out[0].i32().unwrap_or(0);
    if address == 0 {
        return Err(Status::InvalidMemoryAccess.into());
    }
    write(c, address, bytes)?;
    write_u32(c, ptr_ptr, address as u32)?;
    write_u32(c, size_ptr, len as u32)
}

// === the calls ===

fn log(c: &mut Ctx<'_>, level: i32, ptr: i32, len: i32) -> HostResult {
    let message = read(c, ptr, len)?;
    let message = String::from_utf8_lossy(&message);
    let plugin = c.data().info.name.as_str();
    match level {
        0 => tracing::trace!(plugin, "{message}"),
        1 => tracing::debug!(plugin, "{message}"),
        2 => tracing::info!(plugin, "{message}"),
        3 => tracing::warn!(plugin, "{message}"),
        _ => tracing::error!(plugin, "{message}"),
    }
    Ok(())
}

fn map<'c>(c: &'c mut Ctx<'_>, map: i32) -> Result<&'c mut Vec<(String, Vec<u8>)>, HostError> {
    let which = MapType::from_abi(map).ok_or(Status::BadArgument)?;
    Ok(&mut c.data_mut().maps[which as usize])
}

fn header_name(c: &Ctx<'_>, ptr: i32, len: i32) -> Result<String, HostError> {
    Ok(read_str(c, ptr, len)?.to_ascii_lowercase())
}

fn get_header(c: &mut Ctx<'_>, which: i32, kp: i32, ks: i32, vpp: i32, vsp: i32) -> HostResult {
    let name = header_name(c, kp, ks)?;
    let value = map(c, which)?
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.clone())
        .ok_or(Status::NotFound)?;
    copy_out(c, &value, vpp, vsp)
}

fn add_header(c: &mut Ctx<'_>, which: i32, kp: i32, ks: i32, vp: i32, vs: i32) -> HostResult {
    let name = header_name(c, kp, ks)?;
    let value = read(c, vp, vs)?;
    map(c, which)?.push((name, value));
    Ok(())
}

fn replace_header(c: &mut Ctx<'_>, which: i32, kp: i32, ks: i32, vp: i32, vs: i32) -> HostResult {
    let name = header_name(c, kp, ks)?;
    let value = read(c, vp, vs)?;
    let map = map(c, which)?;
    match map.iter().position(|(n, _)| *n == name) {
        Some(at) => {
            map[at].1 = value;
            let mut index = 0;
            map.retain(|(n, _)| {
                index += 1;
                index - 1 <= at || *n != name
            });
        }
        None => map.push((name, value)),
    }
    Ok(())
}

fn remove_header(c: &mut Ctx<'_>, which: i32, kp: i32, ks: i32) -> HostResult {
    let name = header_name(c, kp, ks)?;
    map(c, which)?.retain(|(n, _)| *n != name);
    Ok(())
}

fn get_pairs(c: &mut Ctx<'_>, which: i32, pp: i32, sp: i32) -> HostResult {
    let bytes = abi::encode_pairs(map(c, which)?);
    copy_out(c, &bytes, pp, sp)
}

fn set_pairs(c: &mut Ctx<'_>, which: i32, ptr: i32, len: i32) -> HostResult {
    let bytes = read(c, ptr, len)?;
    let pairs = abi::decode_pairs(&bytes).ok_or(Status::BadArgument)?;
    *map(c, which)? = pairs;
    Ok(())
}

fn map_size(c: &mut Ctx<'_>, which: i32, size_ptr: i32) -> HostResult {
    let size = abi::encode_pairs(map(c, which)?).len();
    write_u32(c, size_ptr, u32::try_from(size).unwrap_or(u32::MAX))
}

fn buffer(c: &Ctx<'_>, which: i32) -> Result<Vec<u8>, HostError> {
    let state = c.data();
    Ok(
        match BufferType::from_abi(which).ok_or(Status::BadArgument)? {
            BufferType::RequestBody => state.bodies[0].to_vec(),
            BufferType::ResponseBody => state.bodies[1].to_vec(),
            BufferType::PluginConfiguration => state.info.config.clone(),
            BufferType::VmConfiguration => Vec::new(),
        },
    )
}

fn get_buffer(c: &mut Ctx<'_>, which: i32, start: i32, len: i32, pp: i32, sp: i32) -> HostResult {
    let bytes = buffer(c, which)?;
    let start = (start as u32 as usize).min(bytes.len());
    let end = start.saturating_add(len as u32 as usize).min(bytes.len());
    if start == end {
        return Ok(());
    }
    copy_out(c, &bytes[start..end], pp, sp)
}

fn buffer_status(c: &mut Ctx<'_>, which: i32, len_ptr: i32, flags_ptr: i32) -> HostResult {
    let len = buffer(c, which)?.len();
    let end = match BufferType::from_abi(which) {
        Some(BufferType::RequestBody) => c.data().end_of_stream[0],
        Some(BufferType::ResponseBody) => c.data().end_of_stream[1],
        _ => true,
    };
    write_u32(c, len_ptr, u32::try_from(len).unwrap_or(u32::MAX))?;
    write_u32(c, flags_ptr, u32::from(end))
}

/// Replaces `len` bytes from `start` of a body with the plugin's bytes
/// (`start` 0 and `len` 0 prepends, as Envoy's buffers do).
fn set_buffer(
    c: &mut Ctx<'_>,
    which: i32,
    start: i32,
    len: i32,
    ptr: i32,
    size: i32,
) -> HostResult {
    let data = read(c, ptr, size)?;
    let index = match BufferType::from_abi(which) {
        Some(BufferType::RequestBody) => 0,
        Some(BufferType::ResponseBody) => 1,
        _ => return Err(Status::BadArgument.into()),
    };
    let body = &mut c.data_mut().bodies[index];
    let start = (start as u32 as usize).min(body.len());
    let end = start.saturating_add(len as u32 as usize).min(body.len());
    let mut next = BytesMut::with_capacity(body.len() - (end - start) + data.len());
    next.extend_from_slice(&body[..start]);
    next.extend_from_slice(&data);
    next.extend_from_slice(&body[end..]);
    *body = next;
    Ok(())
}

fn local_response(
    c: &mut Ctx<'_>,
    status: i32,
    _details: (i32, i32),
    body: (i32, i32),
    pairs: (i32, i32),
) -> HostResult {
    let body = read(c, body.0, body.1)?;
    let pairs = abi::decode_pairs(&read(c, pairs.0, pairs.1)?).ok_or(Status::BadArgument)?;
    let status = u16::try_from(status).map_err(|_| Status::BadArgument)?;
    let mut response = LocalResponse::new(status, body).map_err(|_| Status::BadArgument)?;
    for (name, value) in pairs {
        response = response
            .with_header(&name, &value)
            .map_err(|_| Status::BadArgument)?;
    }
    c.data_mut().local = Some(response);
    Ok(())
}

fn property(c: &mut Ctx<'_>, ptr: i32, len: i32, vpp: i32, vsp: i32) -> HostResult {
    // Envoy separates the path's parts with NULs; the AssemblyScript SDK
    // writes dots. Both read alike here.
    let path = read_str(c, ptr, len)?.replace('\0', ".");
    let state = c.data();
    let value: Vec<u8> = match path.trim_end_matches('.') {
        "source.address" => state.props.source.map(|a| a.to_string()),
        "source.port" => state.props.source.map(|a| a.port().to_string()),
        "destination.address" => state.props.destination.map(|a| a.to_string()),
        "destination.port" => state.props.destination.map(|a| a.port().to_string()),
        "request.path" | "request.url_path" => Some(state.props.path.clone()),
        "request.method" => Some(state.props.method.clone()),
        "listener_name" => state.props.listener.as_deref().map(str::to_string),
        // See the module docs: during a request, the route's name.
        "route_name" => state
            .props
            .listener
            .as_ref()
            .map(|_| state.props.route.clone()),
        "plugin_name" => Some(state.info.name.clone()),
        "plugin_root_id" => Some(state.info.root_id.clone()),
        "plugin_vm_id" => Some(String::new()),
        _ => None,
    }
    .ok_or(Status::NotFound)?
    .into_bytes();
    copy_out(c, &value, vpp, vsp)
}

fn define_metric(c: &mut Ctx<'_>, kind: i32, ptr: i32, len: i32, id_ptr: i32) -> HostResult {
    let kind = Kind::from_abi(kind).ok_or(Status::BadArgument)?;
    let name = read_str(c, ptr, len)?;
    let id = metrics::registry().define(&c.data().info.name, kind, &name);
    write_u32(c, id_ptr, id)
}

fn get_metric(c: &mut Ctx<'_>, id: i32, ptr: i32) -> HostResult {
    let value = metrics::registry().get(id as u32).ok_or(Status::NotFound)?;
    write(c, ptr, &value.to_le_bytes())
}

fn get_shared(c: &mut Ctx<'_>, key: (i32, i32), vpp: i32, vsp: i32, cas_ptr: i32) -> HostResult {
    let key = read(c, key.0, key.1)?;
    let (value, cas) = shared().get(&key)?;
    copy_out(c, &value, vpp, vsp)?;
    write_u32(c, cas_ptr, cas)
}

fn set_shared(c: &mut Ctx<'_>, key: (i32, i32), value: (i32, i32), cas: i32) -> HostResult {
    let key = read(c, key.0, key.1)?;
    let value = read(c, value.0, value.1)?;
    Ok(shared().set(&key, &value, cas as u32)?)
}

fn register_queue(c: &mut Ctx<'_>, ptr: i32, len: i32, token_ptr: i32) -> HostResult {
    let name = read(c, ptr, len)?;
    let token = shared().register(&name, &c.data().info.queues);
    write_u32(c, token_ptr, token)
}

fn resolve_queue(c: &mut Ctx<'_>, ptr: i32, len: i32, token_ptr: i32) -> HostResult {
    let name = read(c, ptr, len)?;
    let token = shared().resolve(&name)?;
    write_u32(c, token_ptr, token)
}

fn enqueue(c: &mut Ctx<'_>, token: i32, ptr: i32, len: i32) -> HostResult {
    let item = read(c, ptr, len)?;
    Ok(shared().enqueue(token as u32, &item)?)
}

fn dequeue(c: &mut Ctx<'_>, token: i32, pp: i32, sp: i32) -> HostResult {
    let item = shared().dequeue(token as u32)?;
    copy_out(c, &item, pp, sp)
}

fn now(c: &mut Ctx<'_>, ptr: i32) -> HostResult {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    write(c, ptr, &nanos.to_le_bytes())
}

fn set_tick(c: &mut Ctx<'_>, millis: i32) -> HostResult {
    let info = &c.data().info;
    info.tick_ms.store(millis as u32, Ordering::Relaxed);
    info.tick_changed.notify_one();
    Ok(())
}

fn get_status(c: &mut Ctx<'_>, code_ptr: i32, pp: i32, sp: i32) -> HostResult {
    write_u32(c, code_ptr, 0)?;
    copy_out(c, &[], pp, sp)
}

// === the table ===

/// Every import the host implements, with its signature: `i` an i32,
/// `I` an i64, results after the `>`.
pub(crate) const HOST: &[(&str, &str)] = &[
    ("proxy_log", "iii>i"),
    ("proxy_get_log_level", "i>i"),
    ("proxy_get_current_time_nanoseconds", "i>i"),
    ("proxy_set_tick_period_milliseconds", "i>i"),
    ("proxy_get_property", "iiii>i"),
    ("proxy_continue_stream", "i>i"),
    ("proxy_send_local_response", "iiiiiiii>i"),
    ("proxy_get_shared_data", "iiiii>i"),
    ("proxy_set_shared_data", "iiiii>i"),
    ("proxy_register_shared_queue", "iii>i"),
    ("proxy_resolve_shared_queue", "iiiii>i"),
    ("proxy_enqueue_shared_queue", "iii>i"),
    ("proxy_dequeue_shared_queue", "iii>i"),
    ("proxy_add_header_map_value", "iiiii>i"),
    ("proxy_get_header_map_value", "iiiii>i"),
    ("proxy_get_header_map_pairs", "iii>i"),
    ("proxy_set_header_map_pairs", "iii>i"),
    ("proxy_replace_header_map_value", "iiiii>i"),
    ("proxy_remove_header_map_value", "iii>i"),
    ("proxy_get_header_map_size", "ii>i"),
    ("proxy_get_buffer_bytes", "iiiii>i"),
    ("proxy_get_buffer_status", "iii>i"),
    ("proxy_set_buffer_bytes", "iiiii>i"),
    ("proxy_define_metric", "iiii>i"),
    ("proxy_increment_metric", "iI>i"),
    ("proxy_record_metric", "iI>i"),
    ("proxy_get_metric", "ii>i"),
    ("proxy_done", ">i"),
    ("proxy_get_status", "iii>i"),
    ("proxy_set_effective_context", "i>i"),
];

pub(crate) fn signature(text: &str) -> FuncType {
    let types = |s: &str| -> Vec<ValType> {
        s.chars()
            .map(|c| if c == 'I' { ValType::I64 } else { ValType::I32 })
            .collect()
    };
    let (params, results) = text.split_once('>').unwrap_or((text, ""));
    FuncType::new(types(params), types(results))
}

/// Defines the functions of [`HOST`] in `l`.
pub(crate) fn define(l: &mut Linker<HostState>) -> Result<(), wasmi::Error> {
    l.func_wrap(
        "env",
        "proxy_log",
        |mut c: Ctx<'_>, level: i32, p: i32, s: i32| done(log(&mut c, level, p, s)),
    )?;
    l.func_wrap("env", "proxy_get_log_level", |mut c: Ctx<'_>, p: i32| {
        done(write_u32(&mut c, p, 2))
    })?;
    l.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut c: Ctx<'_>, p: i32| done(now(&mut c, p)),
    )?;
    l.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut c: Ctx<'_>, ms: i32| done(set_tick(&mut c, ms)),
    )?;
    l.func_wrap(
        "env",
        "proxy_get_property",
        |mut c: Ctx<'_>, p: i32, s: i32, vpp: i32, vsp: i32| done(property(&mut c, p, s, vpp, vsp)),
    )?;
    // Headers are never held (see the `vm` module): there is nothing to resume.
    l.func_wrap("env", "proxy_continue_stream", |_: i32| -> i32 {
        Status::Ok as i32
    })?;
    l.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut c: Ctx<'_>,
         status: i32,
         dp: i32,
         ds: i32,
         bp: i32,
         bs: i32,
         hp: i32,
         hs: i32,
         _grpc: i32| done(local_response(&mut c, status, (dp, ds), (bp, bs), (hp, hs))),
    )?;
    l.func_wrap(
        "env",
        "proxy_get_shared_data",
        |mut c: Ctx<'_>, kp: i32, ks: i32, vpp: i32, vsp: i32, cas: i32| {
            done(get_shared(&mut c, (kp, ks), vpp, vsp, cas))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_shared_data",
        |mut c: Ctx<'_>, kp: i32, ks: i32, vp: i32, vs: i32, cas: i32| {
            done(set_shared(&mut c, (kp, ks), (vp, vs), cas))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_register_shared_queue",
        |mut c: Ctx<'_>, p: i32, s: i32, t: i32| done(register_queue(&mut c, p, s, t)),
    )?;
    l.func_wrap(
        "env",
        "proxy_resolve_shared_queue",
        |mut c: Ctx<'_>, _vp: i32, _vs: i32, p: i32, s: i32, t: i32| {
            done(resolve_queue(&mut c, p, s, t))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_enqueue_shared_queue",
        |mut c: Ctx<'_>, t: i32, p: i32, s: i32| done(enqueue(&mut c, t, p, s)),
    )?;
    l.func_wrap(
        "env",
        "proxy_dequeue_shared_queue",
        |mut c: Ctx<'_>, t: i32, pp: i32, sp: i32| done(dequeue(&mut c, t, pp, sp)),
    )?;
    l.func_wrap(
        "env",
        "proxy_add_header_map_value",
        |mut c: Ctx<'_>, m: i32, kp: i32, ks: i32, vp: i32, vs: i32| {
            done(add_header(&mut c, m, kp, ks, vp, vs))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut c: Ctx<'_>, m: i32, kp: i32, ks: i32, vpp: i32, vsp: i32| {
            done(get_header(&mut c, m, kp, ks, vpp, vsp))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        |mut c: Ctx<'_>, m: i32, pp: i32, sp: i32| done(get_pairs(&mut c, m, pp, sp)),
    )?;
    l.func_wrap(
        "env",
        "proxy_set_header_map_pairs",
        |mut c: Ctx<'_>, m: i32, p: i32, s: i32| done(set_pairs(&mut c, m, p, s)),
    )?;
    l.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |mut c: Ctx<'_>, m: i32, kp: i32, ks: i32, vp: i32, vs: i32| {
            done(replace_header(&mut c, m, kp, ks, vp, vs))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut c: Ctx<'_>, m: i32, kp: i32, ks: i32| done(remove_header(&mut c, m, kp, ks)),
    )?;
    l.func_wrap(
        "env",
        "proxy_get_header_map_size",
        |mut c: Ctx<'_>, m: i32, sp: i32| done(map_size(&mut c, m, sp)),
    )?;
    l.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: Ctx<'_>, b: i32, start: i32, len: i32, pp: i32, sp: i32| {
            done(get_buffer(&mut c, b, start, len, pp, sp))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_buffer_status",
        |mut c: Ctx<'_>, b: i32, lp: i32, fp: i32| done(buffer_status(&mut c, b, lp, fp)),
    )?;
    l.func_wrap(
        "env",
        "proxy_set_buffer_bytes",
        |mut c: Ctx<'_>, b: i32, start: i32, len: i32, p: i32, s: i32| {
            done(set_buffer(&mut c, b, start, len, p, s))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_define_metric",
        |mut c: Ctx<'_>, kind: i32, p: i32, s: i32, id: i32| {
            done(define_metric(&mut c, kind, p, s, id))
        },
    )?;
    l.func_wrap("env", "proxy_increment_metric", |id: i32, offset: i64| {
        if metrics::registry().increment(id as u32, offset) {
            Status::Ok as i32
        } else {
            Status::BadArgument as i32
        }
    })?;
    l.func_wrap("env", "proxy_record_metric", |id: i32, value: i64| {
        if metrics::registry().record(id as u32, value as u64) {
            Status::Ok as i32
        } else {
            Status::BadArgument as i32
        }
    })?;
    l.func_wrap(
        "env",
        "proxy_get_metric",
        |mut c: Ctx<'_>, id: i32, p: i32| done(get_metric(&mut c, id, p)),
    )?;
    l.func_wrap("env", "proxy_done", || -> i32 { Status::Ok as i32 })?;
    l.func_wrap(
        "env",
        "proxy_get_status",
        |mut c: Ctx<'_>, cp: i32, pp: i32, sp: i32| done(get_status(&mut c, cp, pp, sp)),
    )?;
    // One context runs at a time per instance: there is nothing to switch.
    l.func_wrap("env", "proxy_set_effective_context", |_: i32| -> i32 {
        Status::Ok as i32
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_read_as_written() {
        assert_eq!(
            signature("iI>i"),
            FuncType::new([ValType::I32, ValType::I64], [ValType::I32])
        );
        assert_eq!(signature(">i"), FuncType::new([], [ValType::I32]));
    }
}
