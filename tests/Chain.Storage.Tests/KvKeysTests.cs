using static Chain.Storage.Tests.TestUtil;

namespace Chain.Storage.Tests;

public sealed class KvKeysTests
{
    [Fact]
    public void BigEndianIntegersRoundTripAndSortNumerically()
    {
        Assert.Equal(B(0x01, 0x02, 0x03, 0x04), KvKeys.EncodeUInt32(0x01020304));
        Assert.Equal(B(0, 0, 0, 0, 0, 0, 1, 0), KvKeys.EncodeUInt64(256));
        Assert.Equal(0xDEADBEEFu, KvKeys.DecodeUInt32(KvKeys.EncodeUInt32(0xDEADBEEF)));
        Assert.Equal(ulong.MaxValue - 5, KvKeys.DecodeUInt64(KvKeys.EncodeUInt64(ulong.MaxValue - 5)));

        ulong[] numbers = [0, 1, 255, 256, 65535, 1UL << 32, ulong.MaxValue - 1, ulong.MaxValue];
        var encoded = numbers.Select(KvKeys.EncodeUInt64).ToList();
        var sorted = encoded.OrderBy(k => k, KvKeys.Comparer).ToList();
        Assert.Equal(encoded, sorted);

        Span<byte> buffer = stackalloc byte[12];
        KvKeys.WriteUInt32(buffer, 7);
        KvKeys.WriteUInt64(buffer[4..], 9);
        Assert.Equal(7u, KvKeys.DecodeUInt32(buffer));
        Assert.Equal(9ul, KvKeys.DecodeUInt64(buffer[4..]));
    }

    [Fact]
    public void ConcatJoinsParts()
    {
        Assert.Equal(B(1, 2, 3, 4, 5), KvKeys.Concat(B(1, 2), B(), B(3), B(4, 5)));
        Assert.Equal(Array.Empty<byte>(), KvKeys.Concat());
        Assert.Equal(B(1, 2, 3), KvKeys.Concat(B(1).AsSpan(), B(2, 3).AsSpan()));
    }

    [Fact]
    public void PrefixUpperBound()
    {
        Assert.Equal(B(0x01, 0x03), KvKeys.PrefixUpperBound(B(0x01, 0x02)));
        Assert.Equal(B(0x02), KvKeys.PrefixUpperBound(B(0x01, 0xFF)));
        Assert.Equal(B(0x01, 0x01), KvKeys.PrefixUpperBound(B(0x01, 0x00, 0xFF, 0xFF)));
        Assert.Null(KvKeys.PrefixUpperBound(B(0xFF, 0xFF)));
        Assert.Null(KvKeys.PrefixUpperBound(B()));

        // Every key with the prefix sorts below the bound; the bound itself does not have the prefix.
        var prefix = B(0x10, 0xFF);
        var bound = KvKeys.PrefixUpperBound(prefix)!;
        foreach (var key in new[] { prefix, KvKeys.Concat(prefix, B(0xFF, 0xFF, 0xFF)), KvKeys.Concat(prefix, B(0x00)) })
        {
            Assert.True(KvKeys.Compare(key, bound) < 0);
        }

        Assert.False(KvKeys.HasPrefix(bound, prefix));
    }

    [Fact]
    public void ComparerIsUnsignedLexicographic()
    {
        Assert.True(KvKeys.Comparer.Compare(B(0x7F), B(0x80)) < 0);
        Assert.True(KvKeys.Comparer.Compare(B(0x00), B(0x00, 0x00)) < 0);
        Assert.True(KvKeys.Comparer.Compare(B(), B(0x00)) < 0);
        Assert.True(KvKeys.Comparer.Compare(B(0xFF), B(0x01, 0xFF)) > 0);
        Assert.True(KvKeys.Comparer.Equals(B(1, 2), B(1, 2)));
        Assert.Equal(KvKeys.Comparer.GetHashCode(B(1, 2)), KvKeys.Comparer.GetHashCode(B(1, 2)));
    }
}
