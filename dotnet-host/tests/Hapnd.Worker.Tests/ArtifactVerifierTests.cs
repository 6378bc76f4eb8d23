using System.Security.Cryptography;

namespace Hapnd.Worker.Tests;

public sealed class ArtifactVerifierTests
{
    [Fact]
    public void Only_the_keys_own_signature_of_the_exact_bytes_verifies()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var point = key.ExportParameters(false).Q;
        var hex = "04" + Convert.ToHexString(point.X!) + Convert.ToHexString(point.Y!);
        using var verifier = ArtifactVerifier.FromHex(hex);
        var dll = RandomNumberGenerator.GetBytes(4096);
        var signature = key.SignData(dll, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);

        Assert.True(verifier.Verify(dll, signature));
        var changed = (byte[])dll.Clone();
        changed[100] ^= 1;
        Assert.False(verifier.Verify(changed, signature));
        Assert.False(verifier.Verify(dll, signature[..63]));
        using var other = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        Assert.False(verifier.Verify(dll, other.SignData(dll, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation)));
    }

    [Theory]
    [InlineData("zz")]
    [InlineData("0401")]
    [InlineData("05" + "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000")]
    public void A_malformed_public_key_is_refused(string hex) =>
        Assert.Throws<FormatException>(() => ArtifactVerifier.FromHex(hex));
}
