/**
 * A program that is a Python: `python`, `python3`, `python3.12`, `python3.13t` (free-threaded),
 * `pypy`, `pypy3`, `pypy3.10`, each with `.exe` too, at any path (`/opt/venv/bin/python`).
 */
export const PYTHON_PROGRAM = /^(?:python(?:\d+(?:\.\d+)?t?)?|pypy(?:3(?:\.\d+)?)?)(?:\.exe)?$/i;
