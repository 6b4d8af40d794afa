// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Plain-old-data: ABI structures as bytes and back.

/// A type that is safe to view as bytes and to create from any bytes.
///
/// # Safety
///
/// The implementer must be `#[repr(C)]` (or a primitive integer or an array of `Pod`), have no
/// implicit padding (every padding byte is a named field), and accept every bit pattern in
/// every field (no `bool`, `char`, enums or references).
pub unsafe trait Pod: Copy + 'static {}

// SAFETY: primitive integers have no padding and every bit pattern is valid.
unsafe impl Pod for u8 {}
// SAFETY: as above.
unsafe impl Pod for u16 {}
// SAFETY: as above.
unsafe impl Pod for u32 {}
// SAFETY: as above.
unsafe impl Pod for u64 {}
// SAFETY: an array of `Pod` has no padding between elements and accepts every bit pattern.
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {}

/// Views `value` as its bytes.
pub fn as_bytes<T: Pod>(value: &T) -> &[u8] {
    // SAFETY: `T: Pod` has no padding, so all `size_of::<T>()` bytes behind the reference are
    // initialised, and they stay borrowed for the returned lifetime.
    unsafe { core::slice::from_raw_parts(core::ptr::from_ref(value).cast::<u8>(), size_of::<T>()) }
}

/// Views `value` as its bytes, mutably.
pub fn as_bytes_mut<T: Pod>(value: &mut T) -> &mut [u8] {
    // SAFETY: as for `as_bytes`; and any bytes written leave a valid `T`, because `T: Pod`
    // accepts every bit pattern.
    unsafe {
        core::slice::from_raw_parts_mut(core::ptr::from_mut(value).cast::<u8>(), size_of::<T>())
    }
}

/// Reads a `T` from the start of `bytes`, or `None` if `bytes` is too short.
pub fn read<T: Pod>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: the source holds at least `size_of::<T>()` readable bytes, `read_unaligned` has no
    // alignment requirement, and `T: Pod` accepts every bit pattern.
    Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// A `T` with every byte zero.
pub fn zeroed<T: Pod>() -> T {
    // SAFETY: `T: Pod` accepts every bit pattern, zero included.
    unsafe { core::mem::zeroed() }
}

/// Asserts at compile time that a type has the given size and its fields the given offsets.
#[macro_export]
macro_rules! assert_layout {
    ($ty:ty, size $size:expr $(, $field:ident @ $off:expr)* $(,)?) => {
        const _: () = {
            assert!(::core::mem::size_of::<$ty>() == $size);
            $(assert!(::core::mem::offset_of!($ty, $field) == $off);)*
        };
    };
}
