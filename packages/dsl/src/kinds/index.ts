export { http, type HttpOptions } from "./http/http.ts";
export { HttpTaskError } from "./http/errors.ts";
export type { KindTask } from "./kind-task.ts";
