using System.Reflection;
using System.Runtime.Loader;
using System.Security.Cryptography;
using Hapnd.Projections.Contracts;

namespace Hapnd.Worker;

/// <summary>
/// One verified artifact, loaded into a collectible <see cref="AssemblyLoadContext"/> of its own, with its reducer or
/// projection instance. The contracts assembly is shared with the worker (its load context defers everything else
/// to the default one), so <see cref="IReducer"/> and <see cref="IProjection"/> are the same types on both sides.
/// </summary>
internal sealed class LoadedArtifact
{
    private readonly ArtifactLoadContext _context;

    private LoadedArtifact(ArtifactLoadContext context, string id, IReducer? reducer, IProjection? projection)
    {
        _context = context;
        Id = id;
        Reducer = reducer;
        Projection = projection;
    }

    /// <summary>The artifact's content address: the SHA-256 of its DLL, lowercase hex.</summary>
    public string Id { get; }

    public IReducer? Reducer { get; }

    public IProjection? Projection { get; }

    public string Kind => Reducer is not null ? "reducer" : "projection";

    public Type StateType => Reducer?.StateType ?? Projection!.StateType;

    /// <summary>
    /// Loads <paramref name="dll"/> (already verified) and creates its <paramref name="className"/>. Throws
    /// <see cref="ArtifactException"/> when the class is missing or of the wrong kind; exceptions of the user's
    /// constructors come through as they are.
    /// </summary>
    public static LoadedArtifact Load(byte[] dll, string className, string kind)
    {
        var id = Convert.ToHexStringLower(SHA256.HashData(dll));
        var context = new ArtifactLoadContext(id);
        try
        {
            Assembly assembly;
            try
            {
                assembly = context.LoadFromStream(new MemoryStream(dll, writable: false));
            }
            catch (BadImageFormatException error)
            {
                throw new ArtifactException($"the artifact is not a .NET assembly: {error.Message}");
            }
            var type = assembly.GetType(className, throwOnError: false)
                ?? throw new ArtifactException($"the artifact has no class '{className}'");
            object instance;
            try
            {
                instance = Activator.CreateInstance(type)
                    ?? throw new ArtifactException($"'{className}' could not be created");
            }
            catch (TargetInvocationException error) when (error.InnerException is not null)
            {
                throw error.InnerException;
            }
            catch (MissingMethodException)
            {
                throw new ArtifactException($"'{className}' has no public constructor without parameters");
            }
            var loaded = kind switch
            {
                "reducer" when instance is IReducer reducer => new LoadedArtifact(context, id, reducer, null),
                "projection" when instance is IProjection projection => new LoadedArtifact(context, id, null, projection),
                _ => throw new ArtifactException($"'{className}' is not a {kind}"),
            };
            return loaded;
        }
        catch
        {
            context.Unload();
            throw;
        }
    }

    /// <summary>Lets the runtime collect the artifact once nothing refers to it.</summary>
    public void Unload() => _context.Unload();

    private sealed class ArtifactLoadContext(string id) : AssemblyLoadContext("artifact-" + id, isCollectible: true)
    {
        // Everything an artifact references (the framework, the contracts) comes from the worker's own context.
        protected override Assembly? Load(AssemblyName assemblyName) => null;
    }
}

/// <summary>The artifact cannot be used: not the worker's fault, nor the user code's.</summary>
internal sealed class ArtifactException(string message) : Exception(message);
