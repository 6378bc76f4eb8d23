using System.Text.Json;
using System.Text.Json.Nodes;
using Hapnd.Projections.Contracts;

namespace Hapnd.Worker.Tests;

/// <summary>A reducer of this test assembly (not user code: ours, so it may run outside the jail): counts events.</summary>
public sealed record Tally(int Count, string? Last);

/// <summary>Counts a key's events and keeps the last type; an event of type <c>Boom</c> throws.</summary>
public sealed class TallyReducer : IReducer<Tally>
{
    public Tally Apply(Tally? state, Event @event) => @event.Type == "Boom"
        ? throw new ArgumentException("boom on purpose")
        : new Tally((state?.Count ?? 0) + 1, @event.Type);
}

/// <summary>
/// The worker's replay session through its real request handling (<see cref="WorkerService"/> over
/// <see cref="Frames"/>): the states stay in the worker between batches, and the session ends with what one batch of
/// all the events gives. The jailed end to end run is in the repository's <c>tests/csharp/legit.rs</c>.
/// </summary>
public sealed class ReplaySessionTests : IDisposable
{
    private readonly WorkerHarness _worker = new();

    public ReplaySessionTests()
    {
        _worker.Load(typeof(TallyReducer), "reducer");
    }

    public void Dispose() => _worker.Dispose();

    private static readonly (string Key, string Type)[] Events =
    [
        ("a", "Opened"), ("b", "Opened"), ("a", "Added"), ("a", "Added"), ("b", "Added"), ("c", "Opened"), ("a", "Closed"),
    ];

    [Fact]
    public void Batches_of_a_session_fold_into_kept_states_and_end_as_one_batch_of_all_of_them()
    {
        var whole = Ok(Ask($$"""{"cmd":"applyBatch","states":{},"events":{{Rows(Events)}}}"""));

        Assert.Equal("{}", Ok(Ask("""{"cmd":"replayBegin","states":{}}""")).ToJsonString());
        var keys = new List<int>();
        foreach (var batch in Events.Chunk(3))
        {
            var answer = Ok(Ask($$"""{"cmd":"applyBatch","session":true,"events":{{Rows(batch)}}}"""));
            Assert.Null(answer["states"]);
            Assert.NotNull(answer["timingsUs"]?["apply"]);
            keys.Add(answer["keys"]!.GetValue<int>());
        }
        Assert.Equal([2, 3, 3], keys);
        var end = Ok(Ask("""{"cmd":"replayEnd"}"""));

        Assert.Equal(whole["states"]!.ToJsonString(), end["states"]!.ToJsonString());
        Assert.Equal("""{"a":{"count":4,"last":"Closed"},"b":{"count":2,"last":"Added"},"c":{"count":1,"last":"Opened"}}""",
            end["states"]!.ToJsonString());
        Assert.Equal("noSession", Error(Ask("""{"cmd":"replayEnd"}"""))["kind"]!.GetValue<string>());
    }

    [Fact]
    public void A_session_starts_from_the_given_states_and_ends_with_the_keys_its_events_touched()
    {
        Ok(Ask("""{"cmd":"replayBegin","states":{"a":{"count":10,"last":"Old"},"z":{"count":9,"last":"Old"},"b":null}}"""));
        Ok(Ask($$"""{"cmd":"applyBatch","session":true,"events":{{Rows([("a", "Added"), ("b", "Opened")])}}}"""));
        var end = Ok(Ask("""{"cmd":"replayEnd"}"""));
        Assert.Equal("""{"a":{"count":11,"last":"Added"},"b":{"count":1,"last":"Opened"}}""", end["states"]!.ToJsonString());
    }

    [Fact]
    public void A_failing_batch_ends_the_session_at_an_index_counted_from_its_first_event()
    {
        Ok(Ask("""{"cmd":"replayBegin","states":{}}"""));
        Ok(Ask($$"""{"cmd":"applyBatch","session":true,"events":{{Rows([("a", "Opened"), ("a", "Added")])}}}"""));
        var failed = Error(Ask($$"""{"cmd":"applyBatch","session":true,"events":{{Rows([("a", "Added"), ("a", "Boom")])}}}"""));
        Assert.Equal("userException", failed["kind"]!.GetValue<string>());
        Assert.Equal(3, failed["detail"]!["eventIndex"]!.GetValue<int>());
        Assert.Equal("System.ArgumentException", failed["detail"]!["exceptionType"]!.GetValue<string>());

        // The batches the supervisor sent behind the failed one find no session.
        var behind = Error(Ask($$"""{"cmd":"applyBatch","session":true,"events":{{Rows([("a", "Added")])}}}"""));
        Assert.Equal("noSession", behind["kind"]!.GetValue<string>());
        Assert.Equal("noSession", Error(Ask("""{"cmd":"replayEnd"}"""))["kind"]!.GetValue<string>());
    }

    [Fact]
    public void States_with_a_session_batch_are_refused_and_any_error_or_a_load_ends_the_session()
    {
        Assert.Equal("noSession",
            Error(Ask($$"""{"cmd":"applyBatch","session":true,"events":{{Rows([("a", "Added")])}}}"""))["kind"]!.GetValue<string>());

        Ok(Ask("""{"cmd":"replayBegin","states":{}}"""));
        var refused = Error(Ask($$"""{"cmd":"applyBatch","session":true,"states":{"a":null},"events":{{Rows([("a", "Added")])}}}"""));
        Assert.Equal("badRequest", refused["kind"]!.GetValue<string>());
        Assert.Equal("noSession", Error(Ask("""{"cmd":"replayEnd"}"""))["kind"]!.GetValue<string>());

        Ok(Ask("""{"cmd":"replayBegin","states":{}}"""));
        Error(Ask("""{"cmd":"applyBatch","session":true,"events":[["a","not-a-guid"]]}"""));
        Assert.Equal("noSession", Error(Ask("""{"cmd":"replayEnd"}"""))["kind"]!.GetValue<string>());

        Ok(Ask("""{"cmd":"replayBegin","states":{}}"""));
        Load();
        Assert.Equal("noSession", Error(Ask("""{"cmd":"replayEnd"}"""))["kind"]!.GetValue<string>());

        // A plain batch still works, and a new session starts afresh.
        Ok(Ask($$"""{"cmd":"applyBatch","states":{},"events":{{Rows([("a", "Added")])}}}"""));
        Ok(Ask("""{"cmd":"replayBegin","states":{}}"""));
        Assert.Equal("{}", Ok(Ask("""{"cmd":"replayEnd"}"""))["states"]!.ToJsonString());
    }

    private void Load() => _worker.Load(typeof(TallyReducer), "reducer");

    /// <summary>Batch rows for (key, event type) pairs, versions and positions counted from 1.</summary>
    private static string Rows(IEnumerable<(string Key, string Type)> events) =>
        "[" + string.Join(",", events.Select((e, i) =>
            $$"""["{{e.Key}}","00000000-0000-4000-8000-{{i + 1:D12}}","order_1","order","{{e.Type}}",{{i + 1}},{{i + 1}},1767225600000000,{},null,null,null]""")) + "]";

    private JsonNode Ask(string body) => _worker.Ask(body);

    private static JsonNode Ok(JsonNode response) => WorkerHarness.Ok(response);

    private static JsonNode Error(JsonNode response) => WorkerHarness.Error(response);
}
