namespace Chain.Jepsen.Tests;

/// <summary>Tests that start real clusters run one at a time: two clusters on a small machine distort each other's timing.</summary>
[CollectionDefinition(Name)]
public sealed class RealClusters
{
    public const string Name = "real clusters";
}
