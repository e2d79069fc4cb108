#!/usr/bin/env node
'use strict'
// Static checks of built .node files, from their ELF dynamic section (readelf; works for both
// arches on an x86_64 host):
//   - ELF machine matches the platform
//   - stripped (no .symtab / .debug_*)
//   - glibc floor: highest GLIBC_x.y version needed (gnu: <= 2.17; musl: none at all)
//   - NEEDED libraries (musl: only libc.so, which musl's loader maps to itself)
//   - Electron: no napi_create_external_buffer / napi_create_external_arraybuffer (Electron's V8
//     memory cage refuses external backing stores), no experimental N-API, no direct V8/libuv/
//     Node-internal imports, and the N-API version implied by the napi_* functions imported.
//
// usage: node inspect.js [--json] [--check] <platform>=<file.node> ...
//   --check  exit 1 if any rule is broken (used by build-all.sh and test-platforms.sh)
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')

const GLIBC_FLOOR_MAX = process.env.GLIBC_FLOOR_MAX || '2.17'
// N-API version the addon declares (Cargo.toml: napi feature "napi8"); imports must not need more.
const NAPI_VERSION_MAX = Number(process.env.NAPI_VERSION_MAX || 8)

// Which N-API version introduced each function (from Node 24's js_native_api.h / node_api.h
// `#if NAPI_VERSION >= n` guards). Anything napi_*/node_api_* not listed here is unknown.
const NAPI_SINCE = {}
const add = (v, names) => names.split(/\s+/).filter(Boolean).forEach((n) => { NAPI_SINCE[n] = v })
add(1, `napi_adjust_external_memory napi_async_destroy napi_async_init napi_call_function
  napi_cancel_async_work napi_close_escapable_handle_scope napi_close_handle_scope napi_coerce_to_bool
  napi_coerce_to_number napi_coerce_to_object napi_coerce_to_string napi_create_array
  napi_create_array_with_length napi_create_arraybuffer napi_create_async_work napi_create_buffer
  napi_create_buffer_copy napi_create_dataview napi_create_double napi_create_error napi_create_external
  napi_create_external_arraybuffer napi_create_external_buffer napi_create_function napi_create_int32
  napi_create_int64 napi_create_object napi_create_promise napi_create_range_error napi_create_reference
  napi_create_string_latin1 napi_create_string_utf16 napi_create_string_utf8 napi_create_symbol
  napi_create_type_error napi_create_typedarray napi_create_uint32 napi_define_class napi_define_properties
  napi_delete_async_work napi_delete_element napi_delete_property napi_delete_reference napi_escape_handle
  napi_fatal_error napi_get_and_clear_last_exception napi_get_array_length napi_get_arraybuffer_info
  napi_get_boolean napi_get_buffer_info napi_get_cb_info napi_get_dataview_info napi_get_element
  napi_get_global napi_get_last_error_info napi_get_named_property napi_get_new_target
  napi_get_node_version napi_get_null napi_get_property napi_get_property_names napi_get_prototype
  napi_get_reference_value napi_get_typedarray_info napi_get_undefined napi_get_value_bool
  napi_get_value_double napi_get_value_external napi_get_value_int32 napi_get_value_int64
  napi_get_value_string_latin1 napi_get_value_string_utf16 napi_get_value_string_utf8
  napi_get_value_uint32 napi_get_version napi_has_element napi_has_named_property napi_has_own_property
  napi_has_property napi_instanceof napi_is_array napi_is_arraybuffer napi_is_buffer napi_is_dataview
  napi_is_error napi_is_exception_pending napi_is_promise napi_is_typedarray napi_make_callback
  napi_module_register napi_new_instance napi_open_escapable_handle_scope napi_open_handle_scope
  napi_queue_async_work napi_reference_ref napi_reference_unref napi_reject_deferred napi_remove_wrap
  napi_resolve_deferred napi_run_script napi_set_element napi_set_named_property napi_set_property
  napi_strict_equals napi_throw napi_throw_error napi_throw_range_error napi_throw_type_error napi_typeof
  napi_unwrap napi_wrap`)
add(2, 'napi_get_uv_event_loop')
add(3, `napi_add_env_cleanup_hook napi_close_callback_scope napi_fatal_exception napi_open_callback_scope
  napi_remove_env_cleanup_hook`)
add(4, `napi_acquire_threadsafe_function napi_call_threadsafe_function napi_create_threadsafe_function
  napi_get_threadsafe_function_context napi_ref_threadsafe_function napi_release_threadsafe_function
  napi_unref_threadsafe_function`)
add(5, 'napi_add_finalizer napi_create_date napi_get_date_value napi_is_date')
add(6, `napi_create_bigint_int64 napi_create_bigint_uint64 napi_create_bigint_words
  napi_get_all_property_names napi_get_instance_data napi_get_value_bigint_int64
  napi_get_value_bigint_uint64 napi_get_value_bigint_words napi_set_instance_data`)
add(7, 'napi_detach_arraybuffer napi_is_detached_arraybuffer')
add(8, `napi_add_async_cleanup_hook napi_check_object_type_tag napi_object_freeze napi_object_seal
  napi_remove_async_cleanup_hook napi_type_tag_object`)
add(9, 'node_api_create_syntax_error node_api_get_module_file_name node_api_symbol_for node_api_throw_syntax_error')
add(10, `node_api_create_buffer_from_arraybuffer node_api_create_external_string_latin1
  node_api_create_external_string_utf16 node_api_create_property_key_latin1
  node_api_create_property_key_utf16 node_api_create_property_key_utf8`)
const NAPI_EXPERIMENTAL = new Set(`node_api_create_external_sharedarraybuffer node_api_create_object_with_properties
  node_api_create_sharedarraybuffer node_api_is_sharedarraybuffer node_api_post_finalizer
  node_api_set_prototype`.split(/\s+/))
const ELECTRON_FORBIDDEN = ['napi_create_external_buffer', 'napi_create_external_arraybuffer']

const GNU_NEEDED_OK = /^(libc\.so\.6|libgcc_s\.so\.1|libpthread\.so\.0|libdl\.so\.2|libm\.so\.6|librt\.so\.1|ld-linux-(x86-64|aarch64)\.so\.[12])$/
const MACHINE = { x64: 'Advanced Micro Devices X86-64', arm64: 'AArch64' }

const cmpVer = (a, b) => {
  const p = a.split('.').map(Number); const q = b.split('.').map(Number)
  for (let i = 0; i < Math.max(p.length, q.length); i++) {
    const d = (p[i] || 0) - (q[i] || 0)
    if (d) return d
  }
  return 0
}

function readelf (args, file) {
  return execFileSync('readelf', ['-W', ...args, file], { encoding: 'utf8', maxBuffer: 64 << 20 })
}

function inspect (platform, file) {
  const [, arch, libc] = platform.match(/^linux-(x64|arm64)-(gnu|musl)$/) || []
  if (!arch) throw new Error(`unknown platform ${platform}`)
  const r = { platform, file, size: fs.statSync(file).size, errors: [] }
  const header = readelf(['-h'], file)
  r.machine = (header.match(/Machine:\s+(.*)/) || [])[1]
  if (r.machine !== MACHINE[arch]) r.errors.push(`ELF machine is "${r.machine}", expected "${MACHINE[arch]}"`)
  const sections = readelf(['-S'], file)
  r.stripped = !/\s\.symtab\s/.test(sections) && !/\s\.debug_/.test(sections)
  if (!r.stripped) r.errors.push('not stripped (.symtab or .debug_* present)')
  r.needed = [...readelf(['-d'], file).matchAll(/\(NEEDED\)\s+Shared library: \[(.*?)\]/g)].map((m) => m[1])
  const versions = [...readelf(['-V'], file).matchAll(/Name: GLIBC_([0-9.]+)/g)].map((m) => m[1])
  r.glibcMax = versions.sort(cmpVer).at(-1) || null
  // undefined dynamic symbols = what the addon imports from the host process / libraries
  const imports = []
  for (const line of readelf(['--dyn-syms'], file).split('\n')) {
    const f = line.trim().split(/\s+/)
    if (f.length >= 8 && f[6] === 'UND' && f[7]) imports.push(f[7].replace(/@.*/, ''))
  }
  r.napiImports = imports.filter((n) => /^(napi|node_api)_/.test(n)).sort()
  r.unknownNapi = r.napiImports.filter((n) => !(n in NAPI_SINCE) && !NAPI_EXPERIMENTAL.has(n))
  r.experimentalNapi = r.napiImports.filter((n) => NAPI_EXPERIMENTAL.has(n))
  r.electronForbidden = r.napiImports.filter((n) => ELECTRON_FORBIDDEN.includes(n))
  r.hostInternals = imports.filter((n) => /^(uv_|_ZN2v8|_ZN4node|_ZNK2v8|_ZNK4node)/.test(n))
  let best = null
  for (const n of r.napiImports) {
    const v = NAPI_SINCE[n]
    if (v && (!best || v > best.version)) best = { fn: n, version: v }
  }
  r.napiVersion = best ? best.version : null
  r.napiHighestFn = best ? best.fn : null

  if (libc === 'gnu') {
    if (!r.glibcMax) r.errors.push('imports no GLIBC_ version at all (not a glibc build?)')
    else if (cmpVer(r.glibcMax, GLIBC_FLOOR_MAX) > 0) r.errors.push(`needs GLIBC_${r.glibcMax} > ${GLIBC_FLOOR_MAX}`)
    const odd = r.needed.filter((n) => !GNU_NEEDED_OK.test(n))
    if (odd.length) r.errors.push(`unexpected NEEDED: ${odd.join(', ')}`)
  } else {
    if (versions.length) r.errors.push(`musl build imports glibc symbol versions: ${[...new Set(versions)].join(', ')}`)
    const odd = r.needed.filter((n) => n !== 'libc.so')
    if (odd.length) r.errors.push(`musl build NEEDED other than libc.so: ${odd.join(', ')}`)
  }
  if (!r.napiImports.length) r.errors.push('imports no napi_* functions (not an N-API addon?)')
  if (r.electronForbidden.length) r.errors.push(`Electron: imports ${r.electronForbidden.join(', ')} (external backing stores are refused in Electron)`)
  if (r.experimentalNapi.length) r.errors.push(`imports experimental N-API: ${r.experimentalNapi.join(', ')}`)
  if (r.unknownNapi.length) r.errors.push(`imports unknown N-API functions: ${r.unknownNapi.join(', ')}`)
  if (r.hostInternals.length) r.errors.push(`imports non-N-API host symbols: ${r.hostInternals.slice(0, 5).join(', ')}`)
  if (r.napiVersion && r.napiVersion > NAPI_VERSION_MAX) r.errors.push(`needs N-API ${r.napiVersion} (${r.napiHighestFn}) > ${NAPI_VERSION_MAX}`)
  return r
}

function main () {
  const args = process.argv.slice(2)
  const json = args.includes('--json')
  const check = args.includes('--check')
  const results = args.filter((a) => !a.startsWith('--')).map((a) => {
    const i = a.indexOf('=')
    return inspect(a.slice(0, i), a.slice(i + 1))
  })
  if (json) {
    console.log(JSON.stringify(results, null, 2))
  } else {
    for (const r of results) {
      console.log(`${r.platform}: ${r.file}`)
      console.log(`  size ${r.size} bytes (${(r.size / 1024).toFixed(1)} KiB), ${r.machine}, ${r.stripped ? 'stripped' : 'NOT stripped'}`)
      console.log(`  highest GLIBC_ version imported: ${r.glibcMax || 'none'}`)
      console.log(`  NEEDED: ${r.needed.join(', ') || '(none)'}`)
      console.log(`  N-API: ${r.napiImports.length} functions imported, highest ${r.napiHighestFn} -> N-API ${r.napiVersion}; external buffer/arraybuffer imports: ${r.electronForbidden.length ? r.electronForbidden.join(', ') : 'none'}`)
      console.log(`  ${r.errors.length ? 'FAIL: ' + r.errors.join('; ') : 'OK'}`)
    }
  }
  if (check && results.some((r) => r.errors.length)) process.exit(1)
}

if (require.main === module) main()
module.exports = { inspect }
