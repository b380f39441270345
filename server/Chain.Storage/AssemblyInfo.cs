using System.Runtime.CompilerServices;

// The storage tests use internal test hooks (pausing the group-commit writer, injecting native write failures).
[assembly: InternalsVisibleTo("Chain.Storage.Tests")]
