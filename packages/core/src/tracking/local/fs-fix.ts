/**
 * What to do about a file system error met in the embedded store, by its code: Node's message
 * (`ENOTDIR: not a directory, mkdir '…'`) says what failed, never what the user can do about it.
 */

/** Where the store can be pointed instead, in the words every store message uses. */
export const POINT_ELSEWHERE = "`--root DIR` on the command line, the `root` option in code";

/** The fix for `error`, met reading or writing a file or folder of the store; one clause, no final period. */
export function fsFix(error: unknown, doing: "read" | "write"): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case "EISDIR":
    case "ENOTDIR":
    case "EEXIST":
      return "something else stands where Cairn expects it (a folder for a file, or a file for a folder); move it away or restore what was there";
    case "EACCES":
    case "EPERM":
      return doing === "read"
        ? "check its permissions (this user must be able to read it)"
        : `this user may not write there: make it writable, or point the store at a writable folder (${POINT_ELSEWHERE})`;
    case "EROFS":
      return `its file system is read-only: point the store at a writable folder (${POINT_ELSEWHERE})`;
    case "ENOSPC":
    case "EDQUOT":
      return "the disk (or your quota) is full: free space on it, then run again";
    case "EMFILE":
    case "ENFILE":
      return "too many files are open at once; raise the limit (`ulimit -n`) or try again";
    default:
      return "check the file and the disk it is on, then try again";
  }
}
