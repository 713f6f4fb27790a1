import { userInfo } from "node:os";
import { describe, expect, it } from "vitest";
import { userName } from "./user-name.ts";

describe("userName: as Python's getpass.getuser(), which MLflow's client asks", () => {
  it("reads LOGNAME, USER, LNAME, USERNAME in that order, skipping empty ones", () => {
    expect(userName({ LOGNAME: "a", USER: "b", LNAME: "c", USERNAME: "d" })).toBe("a");
    expect(userName({ LOGNAME: "", USER: "b", USERNAME: "d" })).toBe("b");
    expect(userName({ LNAME: "c", USERNAME: "d" })).toBe("c");
    expect(userName({ USERNAME: "d" })).toBe("d");
  });

  it("falls back to the password database's name of the process's uid", () => {
    expect(userName({})).toBe(userInfo().username);
  });
});
