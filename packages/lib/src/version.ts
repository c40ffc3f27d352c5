/** The project's version, as every binary reports it (`--version`, rpc.discover). */
export const VERSION = "0.1.0";
