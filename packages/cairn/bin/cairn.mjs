#!/usr/bin/env node
// The `cairn` command of the installed package: @cairn/cli's launcher.
import "@cairn/cli/bin";
