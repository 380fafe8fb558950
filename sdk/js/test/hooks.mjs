// Module hooks for testing wasmtel.js under Node.js: the host's imports (`wasmtel:...`,
// `wasi:...`), which only exist inside a component, resolve to the stand-ins of `host.mjs`.
export async function resolve(specifier, context, next) {
  if (specifier.startsWith('wasmtel:') || specifier.startsWith('wasi:')) {
    return { url: new URL('./host.mjs', import.meta.url).href, shortCircuit: true };
  }
  return next(specifier, context);
}
