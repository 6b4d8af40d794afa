// SPDX-License-Identifier: GPL-2.0

//! A proof that a device is bound, for process context that sleeps.
//!
//! A driver's ioctls run with no [`Device<Bound>`] to hand, and some must allocate DMA memory
//! (page tables, rings), which takes one. [`Devres`](crate::devres::Devres) does not serve
//! them: its access holds an RCU read lock, and a `GFP_KERNEL` allocation sleeps.
//! [`DeviceBinding`] keeps the device and a flag under a mutex; a devres action registered
//! at creation clears the flag when the device unbinds. [`DeviceBinding::with`] runs its
//! closure under the mutex with the flag set, so the unbind waits for it, and no closure
//! starts afterwards. Soundness does not depend on the driver: it may end the binding early
//! ([`DeviceBinding::revoke`], e.g. at the start of its remove), but need not.
//!
//! ```text
//!  new (probe: bound) --with*--> revoke (optional) --> devres action at unbind: cleared
//!                                  with: ENODEV from here on
//! ```

use crate::{
    device::{Bound, Device},
    devres, new_mutex,
    prelude::*,
    sync::{aref::ARef, Arc, Mutex},
};

/// The device and whether it is still bound.
///
/// # Invariants
///
/// While `bound` holds `true`, `dev` is bound: it is set at creation from a `&Device<Bound>`
/// and cleared, under the lock, by the devres action that runs when the device unbinds.
#[pin_data]
struct State {
    dev: ARef<Device>,
    #[pin]
    bound: Mutex<bool>,
}

/// The devres action: clears the flag when the device unbinds.
struct Unbind(Arc<State>);

impl Drop for Unbind {
    fn drop(&mut self) {
        *self.0.bound.lock() = false;
    }
}

/// A device handle that gives a `&Device<Bound>` in sleeping process context while the
/// device is bound (see the module docs).
#[derive(Clone)]
pub struct DeviceBinding {
    state: Arc<State>,
}

impl DeviceBinding {
    /// A binding of `dev`, which is bound now; it ends when `dev` unbinds.
    ///
    /// # Errors
    ///
    /// `ENOMEM`, or the error of registering the devres action.
    pub fn new(dev: &Device<Bound>) -> Result<Self> {
        let plain: &Device = dev;
        let state = Arc::pin_init(
            pin_init!(State {
                dev: plain.into(),
                bound <- new_mutex!(true),
            }),
            GFP_KERNEL,
        )?;
        devres::register(dev, Unbind(state.clone()), GFP_KERNEL)?;
        Ok(Self { state })
    }

    /// Runs `f` with the bound device. May sleep; the device does not unbind until `f`
    /// returns.
    ///
    /// # Errors
    ///
    /// `ENODEV` once the device has unbound or the binding was revoked; else `f`'s error.
    pub fn with<R>(&self, f: impl FnOnce(&Device<Bound>) -> Result<R>) -> Result<R> {
        let bound = self.state.bound.lock();
        if !*bound {
            return Err(ENODEV);
        }
        // SAFETY: By the type invariant, `bound` is true only while the device is bound, and
        // the devres action that clears it at unbind takes this lock, which is held until `f`
        // returns: the device stays bound for as long as the reference is used.
        f(unsafe { self.state.dev.as_bound() })
    }

    /// Ends the binding early: later [`Self::with`] calls fail with `ENODEV`, and this waits
    /// for a running one.
    pub fn revoke(&self) {
        *self.state.bound.lock() = false;
    }
}

#[cfg(CONFIG_RUST_DRM_SCHED_KUNIT_TEST)]
#[macros::kunit_tests(rust_device_binding)]
mod tests {
    use super::*;
    use crate::faux;

    /// A faux device and a binding of it.
    fn bound_faux() -> Result<(faux::Registration, DeviceBinding)> {
        let reg = faux::Registration::new(c"vagx-device-binding-test", None)?;
        // SAFETY: A faux device is bound to the faux bus's driver from its creation until its
        // registration is dropped, and `dev` is used only here, while `reg` is alive.
        let dev = unsafe { reg.as_ref().as_bound() };
        let binding = DeviceBinding::new(dev)?;
        Ok((reg, binding))
    }

    #[test]
    fn the_binding_ends_when_the_device_unbinds() -> Result {
        let (reg, binding) = bound_faux()?;
        assert_eq!(binding.with(|_| Ok(7))?, 7);
        // Errors of the closure come back as they are.
        assert_eq!(
            binding.with(|_| -> Result<u32> { Err(EINVAL) }),
            Err(EINVAL)
        );
        let copy = binding.clone();
        drop(reg);
        assert_eq!(binding.with(|_| Ok(7)), Err(ENODEV));
        assert_eq!(copy.with(|_| Ok(7)), Err(ENODEV));
        Ok(())
    }

    #[test]
    fn a_revoked_binding_refuses_while_the_device_is_bound() -> Result {
        let (reg, binding) = bound_faux()?;
        binding.revoke();
        assert_eq!(binding.with(|_| Ok(7)), Err(ENODEV));
        drop(reg);
        Ok(())
    }
}
