import EdgeAgentCLI

WardenAgent.main()
