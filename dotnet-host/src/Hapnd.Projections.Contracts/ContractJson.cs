using System.Text.Json;

namespace Hapnd.Projections.Contracts;

/// <summary>The one set of JSON options for event data and state: camelCase, names matched case-insensitively.</summary>
public static class ContractJson
{
    /// <summary>The options <see cref="Event.GetData{T}"/> and the state bridges use. Read-only.</summary>
    public static JsonSerializerOptions Options { get; } = CreateOptions();

    private static JsonSerializerOptions CreateOptions()
    {
        var options = new JsonSerializerOptions
        {
            PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
            PropertyNameCaseInsensitive = true,
        };
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }

    /// <summary>Reads a state from JSON; <c>null</c> (no text, or JSON <c>null</c>) is no state yet.</summary>
    internal static TState? DeserializeState<TState>(string? json) =>
        json is null ? default : JsonSerializer.Deserialize<TState>(json, Options);

    /// <summary>Writes a state as JSON.</summary>
    internal static string SerializeState<TState>(TState? state) => JsonSerializer.Serialize(state, Options);

    /// <summary>Casts an untyped state handed through a bridge back to its type.</summary>
    internal static TState? CastState<TState>(object? state) => state switch
    {
        null => default,
        TState typed => typed,
        _ => throw new ArgumentException(
            $"a state of type {state.GetType().FullName} was given where {typeof(TState).FullName} is expected",
            nameof(state)),
    };
}
