import WardenCLI

await WardenRoot.entry()
