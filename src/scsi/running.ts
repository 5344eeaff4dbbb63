/**
 * How many commands device servers are running right now, across every LU of the process.
 * A store may block its thread on a request only when that request is the only one (see
 * BackingStore.read `mayBlock`): any other running command is waiting for the same thread.
 */
let running = 0;

export function commandStarted(): void {
  running++;
}

export function commandFinished(): void {
  running--;
}

/** Commands between executeCommand() and the end of their handler. */
export function runningCommands(): number {
  return running;
}
