/**
 * WebGPU reports a failed shader or dispatch (a validation or out-of-memory error) as an event on
 * the device, not as an exception, and the computation then yields garbage silently. The engine
 * watches the device; every read back of the science path (hvp.ts) calls `throwIfDeviceError`, so a
 * device error fails the call that saw it with a one-line message instead of a wrong number.
 */
interface ErrorEventLike {
  error?: { message?: string }
}
interface DeviceLike {
  addEventListener?(type: 'uncapturederror', fn: (e: ErrorEventLike) => void): void
  onuncapturederror?: unknown
}

let pending: string | undefined
const watched = new WeakSet<object>()

/** Starts recording `device`'s uncaptured errors (once per device). */
export function watchDevice(device: DeviceLike): void {
  if (watched.has(device)) return
  watched.add(device)
  const record = (e: ErrorEventLike): void => {
    pending ??= (e.error?.message ?? 'unknown device error').split('\n').filter(Boolean)[0]
  }
  if (typeof device.addEventListener === 'function') device.addEventListener('uncapturederror', record)
  else device.onuncapturederror = record
}

/** Throws (once) if the device reported an error since the last check. */
export function throwIfDeviceError(): void {
  if (pending === undefined) return
  const message = pending
  pending = undefined
  throw new Error(`webgpu device error: ${message}`)
}
