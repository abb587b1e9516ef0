// Evaluated in each program's context before the program itself. It defines
// addHandler(), makes Date and Math.random deterministic (the request's received_at and
// a generator seeded from its request id, so a retry gives the same output), silences
// console, and returns the gateway's handles: handler() and begin(now, seed...).
(() => {
  "use strict";
  let handler;
  let now = 0;
  let s0 = 1, s1 = 0, s2 = 0, s3 = 0;

  const RealDate = Date;
  const FixedDate = function Date(...args) {
    if (new.target === undefined) return new RealDate(now).toString();
    return args.length === 0 ? new RealDate(now) : new RealDate(...args);
  };
  FixedDate.prototype = RealDate.prototype;
  Object.defineProperties(FixedDate, {
    now: { value: () => now },
    parse: { value: RealDate.parse },
    UTC: { value: RealDate.UTC },
  });
  Object.defineProperty(RealDate.prototype, "constructor", { value: FixedDate });
  Object.defineProperty(globalThis, "Date", { value: FixedDate });

  // xorshift128: the same sequence for the same request id.
  const random = () => {
    const s = s0;
    let t = s3;
    s3 = s2;
    s2 = s1;
    s1 = s;
    t ^= t << 11;
    t ^= t >>> 8;
    s0 = t ^ s ^ (s >>> 19);
    return (s0 >>> 0) / 4294967296;
  };
  Object.defineProperty(Math, "random", { value: random });
  if (typeof globalThis.performance === "object") {
    Object.defineProperty(globalThis, "performance", { value: { now: () => 0 } });
  }

  const quiet = () => {};
  globalThis.console = { log: quiet, info: quiet, warn: quiet, error: quiet, debug: quiet };

  Object.defineProperty(globalThis, "addHandler", {
    value: function addHandler(kind, fn) {
      if (kind !== "transform") {
        throw new TypeError(
          'addHandler: only "transform" handlers exist here, not ' + JSON.stringify(kind));
      }
      if (typeof fn !== "function") {
        throw new TypeError('addHandler("transform", fn): fn must be a function');
      }
      handler = fn;
    },
  });

  return {
    handler: () => handler,
    begin: (at, a, b, c, d) => {
      now = at;
      s0 = a | 0;
      s1 = b | 0;
      s2 = c | 0;
      s3 = d | 0;
      if ((s0 | s1 | s2 | s3) === 0) s0 = 1;
    },
  };
})()
