#!/usr/bin/env node
// The `cairn` command of the installed package: @cairn/dsl's CLI launcher.
import "@cairn/dsl/cli";
