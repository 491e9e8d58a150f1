import EdgeAgentCLI

await WardenAgent.entry()
