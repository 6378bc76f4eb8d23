using System.Security.Cryptography;

namespace Hapnd.Worker;

/// <summary>
/// Checks an artifact's signature before it is loaded: ECDSA P-256 over the DLL with SHA-256, the signature as
/// IEEE P1363 <c>r ‖ s</c> (64 bytes), the supervisor's public key as an uncompressed SEC1 point (65 bytes), as the
/// policy crate's <c>signing.rs</c> produces them.
/// </summary>
internal sealed class ArtifactVerifier : IDisposable
{
    private const int PointBytes = 65;
    private const int SignatureBytes = 64;

    private readonly ECDsa _key;

    private ArtifactVerifier(ECDsa key) => _key = key;

    /// <summary>The verifier for a public key given as hex, or <see cref="FormatException"/>.</summary>
    public static ArtifactVerifier FromHex(string hex)
    {
        byte[] point;
        try
        {
            point = Convert.FromHexString(hex);
        }
        catch (FormatException)
        {
            throw new FormatException("the public key is not hex");
        }
        if (point.Length != PointBytes || point[0] != 0x04)
        {
            throw new FormatException("the public key is not an uncompressed P-256 point (65 bytes, 0x04 first)");
        }
        var parameters = new ECParameters
        {
            Curve = ECCurve.NamedCurves.nistP256,
            Q = new ECPoint { X = point[1..33], Y = point[33..] },
        };
        try
        {
            return new ArtifactVerifier(ECDsa.Create(parameters));
        }
        catch (CryptographicException)
        {
            throw new FormatException("the public key is not a point on P-256");
        }
    }

    /// <summary>Whether <paramref name="signature"/> is the supervisor's signature of <paramref name="dll"/>.</summary>
    public bool Verify(ReadOnlySpan<byte> dll, ReadOnlySpan<byte> signature) =>
        signature.Length == SignatureBytes
        && _key.VerifyData(dll, signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);

    public void Dispose() => _key.Dispose();
}
