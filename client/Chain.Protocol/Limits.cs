namespace Chain.Protocol;

/// <summary>Every bound of the system in one place, with units in the names. Checked against each other at start-up.</summary>
public static class Limits
{
    public const int KeyBytesMax = 1024;
    /// <summary>
    /// Default chunk size of the client: objects up to this size are stored inline (one update on the key's chain),
    /// larger ones are cut into chunks of this size placed on chains by their SHA-256.
    /// </summary>
    public const int ChunkBytes = 4 * 1024 * 1024;
    /// <summary>
    /// Size of the data frames of an inline (streamed) put: an object of up to one chunk goes to its key's chain in
    /// frames of this size, each stored as a piece on that chain, the last one riding with the object record.
    /// </summary>
    public const int StreamFrameBytes = 1024 * 1024;
    /// <summary>Smallest chunk size a client may configure (bounds a manifest's length).</summary>
    public const int ChunkBytesMin = 256 * 1024;
    /// <summary>Largest chunk any node accepts.</summary>
    public const int ChunkBytesMax = 8 * 1024 * 1024;
    /// <summary>Largest RPC message; a chunk plus its envelope must fit.</summary>
    public const int MessageBytesMax = 12 * 1024 * 1024;
    /// <summary>Chunk references one manifest may carry (objects up to the maximum size at the smallest chunk size).</summary>
    public const int ManifestChunksMax = 65_536;
    public const long ObjectBytesMaxDefault = 5L * 1024 * 1024 * 1024;
    /// <summary>Updates a head keeps in flight per chain before it stops taking new writes (backpressure).</summary>
    public const int InFlightUpdatesMax = 4096;
    /// <summary>Bytes of chunk data a head keeps in flight per chain.</summary>
    public const long InFlightBytesMax = 64L * 1024 * 1024;
    /// <summary>Bytes of chunk data a node keeps in flight as head over all its chains (bounds memory with many chains).</summary>
    public const long NodeInFlightBytesMax = 192L * 1024 * 1024;
    public const int ListLimitMax = 1000;
    public const int RequestIdBytes = 16;
    public const int UserMetadataBytesMax = 2048;
    /// <summary>Chunk ids a syncing node lists in its welcome (32 bytes each: must fit in one message).</summary>
    public const int SyncInventoryChunksMax = 100_000;

    public static void Check()
    {
        if (ChunkBytesMax + 64 * 1024 > MessageBytesMax)
            throw new InvalidOperationException("a chunk and its envelope must fit in one message");
        if (ChunkBytes < ChunkBytesMin || ChunkBytes > ChunkBytesMax)
            throw new InvalidOperationException("the default chunk size must be within the allowed range");
        if ((long)ManifestChunksMax * 48 > MessageBytesMax)
            throw new InvalidOperationException("a manifest must fit in one message");
        if (ObjectBytesMaxDefault / ChunkBytesMin > ManifestChunksMax)
            throw new InvalidOperationException("an object of the maximum size must fit in one manifest at the smallest chunk size");
        if (SyncInventoryChunksMax * 40L > MessageBytesMax)
            throw new InvalidOperationException("a sync inventory must fit in one message");
        if (InFlightBytesMax < 4L * ChunkBytesMax || NodeInFlightBytesMax < InFlightBytesMax)
            throw new InvalidOperationException("in-flight bytes must hold several chunks");
    }
}
