using CriRuntime.Config;
using CriRuntime.Hosting;

// criruntime [--config FILE]      serve the CRI API
// criruntime config default      print the default configuration
// criruntime --version           print the version
return await CommandLine.RunAsync(args);
