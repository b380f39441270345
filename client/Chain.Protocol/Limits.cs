namespace Chain.Protocol;

/// <summary>Every bound of the system in one place, with units in the names. Checked against each other at start-up.</summary>
public static class Limits
{
    public const int KeyBytesMax = 1024;
    public const int ChunkBytes = 1024 * 1024;
    /// <summary>Largest RPC message; a chunk plus its envelope must fit.</summary>
    public const int MessageBytesMax = 4 * 1024 * 1024;
    public const long ObjectBytesMaxDefault = 5L * 1024 * 1024 * 1024;
    /// <summary>Updates a head keeps in flight per chain before it stops taking new writes (backpressure).</summary>
    public const int InFlightUpdatesMax = 4096;
    /// <summary>Bytes of chunk data a head keeps in flight per chain.</summary>
    public const long InFlightBytesMax = 64L * 1024 * 1024;
    public const int ListLimitMax = 1000;
    public const int RequestIdBytes = 16;
    public const int UserMetadataBytesMax = 2048;
    /// <summary>Chunk ids a syncing node lists in its welcome (32 bytes each: must fit in one message).</summary>
    public const int SyncInventoryChunksMax = 100_000;

    public static void Check()
    {
        if (ChunkBytes + 64 * 1024 > MessageBytesMax)
            throw new InvalidOperationException("a chunk and its envelope must fit in one message");
        if (SyncInventoryChunksMax * 40L > MessageBytesMax)
            throw new InvalidOperationException("a sync inventory must fit in one message");
        if (InFlightBytesMax < 4L * ChunkBytes)
            throw new InvalidOperationException("in-flight bytes must hold several chunks");
    }
}
