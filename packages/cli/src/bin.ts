#!/usr/bin/env node
/**
 * The `tessera` executable: the only place in Tessera that runs effects at
 * the top level.
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Effect } from "effect"
import { Command } from "effect/cli"
import { tessera } from "./Cli.ts"

tessera.pipe(Command.run({ version: "0.1.0" }), Effect.provide(NodeServices.layer), NodeRuntime.runMain)
