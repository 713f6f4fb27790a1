/**
 * The run's listeners on the `signal` it was given, through one `abort` listener per signal
 * however many runs listen to it: an app passes one AbortSignal (its shutdown) to every run it
 * starts, and with a listener of each run on it Node printed MaxListenersExceededWarning past ten
 * runs at once, though each run removed its own at its end. The signal is the app's: its
 * listener limit is not Cairn's to raise.
 */

interface SignalListeners {
  readonly listeners: Set<() => void>;
  readonly dispatch: () => void;
}

const bySignal = new WeakMap<AbortSignal, SignalListeners>();

/**
 * Calls `listener` once, when `signal` aborts, as `addEventListener("abort", listener, { once: true })`
 * would (never if it has aborted already); the function returned removes it. A listener that
 * throws is reported as an uncaught exception, as an event listener's throw is, and the others
 * are still called.
 */
export function onAbort(signal: AbortSignal, listener: () => void): () => void {
  let entry = bySignal.get(signal);
  if (!entry) {
    const listeners = new Set<() => void>();
    const dispatch = () => {
      bySignal.delete(signal);
      // The live set: a listener that an earlier one removed is not called, as with EventTarget.
      for (const l of listeners) {
        listeners.delete(l);
        try {
          l();
        } catch (error) {
          process.nextTick(() => {
            throw error;
          });
        }
      }
    };
    signal.addEventListener("abort", dispatch, { once: true });
    entry = { listeners, dispatch };
    bySignal.set(signal, entry);
  }
  const current = entry;
  const { listeners, dispatch } = current;
  // A wrapper of its own, so that one function given twice is two listeners, each removed by its own remover.
  const own = () => listener();
  listeners.add(own);
  return () => {
    if (!listeners.delete(own) || listeners.size || bySignal.get(signal) !== current) return;
    bySignal.delete(signal);
    signal.removeEventListener("abort", dispatch);
  };
}
