// The daemon and these tests are Linux-only (unix sockets, overlay layouts, xattrs).
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
