// Node globals that @virgilsecurity/e3kit-browser's dependencies expect in the browser: `Buffer`
// (the `buffer` package) and a minimal `process`. Imported first by app.js, so it runs before
// e3kit's modules are evaluated (ES modules run in import order).
import { Buffer } from 'buffer';

if (typeof globalThis.Buffer === 'undefined') globalThis.Buffer = Buffer;
if (typeof globalThis.process === 'undefined') {
  globalThis.process = {
    env: {},
    browser: true,
    version: '',
    versions: {},
    nextTick: (fn, ...args) => queueMicrotask(() => fn(...args)),
  };
}
if (typeof globalThis.global === 'undefined') globalThis.global = globalThis;
