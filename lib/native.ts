// The native binding, loaded once (native.js picks the prebuilt .node for this CPU and libc).
// Internal: nothing here is part of the public API.
import type * as Binding from '../binding'

/** The generated exports, plus the hot-path functions `native.js` adds from `hotPaths()`. */
type NativeBinding = typeof Binding & ReturnType<typeof Binding.hotPaths>

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const native: NativeBinding = require('../native.js')
export type NativeSocket = Binding.NativeSocket
export type NativeAddressInfo = Binding.AddressInfo
export type NativeQueuedError = Binding.QueuedErrorInfo
