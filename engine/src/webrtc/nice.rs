//! Telling webrtcbin's libnice agent which local addresses to gather host candidates on.
//!
//! GStreamer 1.22 exposes the `NiceAgent` (`ice-agent` → `agent`) but no setting for its local
//! addresses, and libnice by default skips loopback and offers every other interface. Operators
//! need the opposite: candidates on the addresses they configure (a public interface, or
//! loopback on a test machine). libnice's own `nice_agent_add_local_address` does exactly that
//! when called before gathering; this is the one call showmix makes into libnice directly.

use std::ffi::{CString, c_char, c_int, c_void};
use std::net::IpAddr;

use gst::glib;
use gst::glib::translate::ToGlibPtr;
use gst::prelude::*;

#[link(name = "nice")]
unsafe extern "C" {
    fn nice_address_new() -> *mut c_void;
    fn nice_address_free(addr: *mut c_void);
    fn nice_address_set_from_string(addr: *mut c_void, s: *const c_char) -> c_int;
    fn nice_agent_add_local_address(agent: *mut c_void, addr: *mut c_void) -> c_int;
}

/// Restricts the agent of `webrtcbin` to `addresses` (before any gathering starts). Empty:
/// libnice's default.
pub fn bind_addresses(webrtcbin: &gst::Element, addresses: &[IpAddr]) -> Result<(), String> {
    if addresses.is_empty() {
        return Ok(());
    }
    let ice = webrtcbin.property::<glib::Object>("ice-agent");
    if ice.find_property("agent").is_none() {
        return Err("this GStreamer's ICE agent is not libnice; cannot bind addresses".into());
    }
    let agent = ice.property::<glib::Object>("agent");
    for a in addresses {
        let s = CString::new(a.to_string()).map_err(|e| e.to_string())?;
        let agent_ptr: *mut glib::gobject_ffi::GObject = agent.to_glib_none().0;
        // SAFETY: `agent` is a live NiceAgent (the property's type), kept alive by the
        // reference we hold for the whole call; the address is allocated, set and freed by
        // libnice itself, and the agent copies it.
        let ok = unsafe {
            let addr = nice_address_new();
            if addr.is_null() {
                return Err("libnice cannot allocate an address".into());
            }
            let set = nice_address_set_from_string(addr, s.as_ptr());
            let added = set != 0 && nice_agent_add_local_address(agent_ptr.cast(), addr) != 0;
            nice_address_free(addr);
            added
        };
        if !ok {
            return Err(format!("libnice refuses local address {a}"));
        }
    }
    Ok(())
}
