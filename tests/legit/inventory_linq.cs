using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record StockLine(string Sku, string Location, int Quantity);

public record SkuTotal(string Sku, int Quantity, int Locations);

public record InventoryState
{
    public List<StockLine> Lines { get; init; } = [];
    public List<SkuTotal> Summary { get; init; } = [];
    public List<string> LowStock { get; init; } = [];
    public List<string> Locations { get; init; } = [];
    public int TotalUnits { get; init; }
}

public record StockChangeData(string Sku, string Location, int Quantity);

public record StockMoveData(string Sku, string From, string To, int Quantity);

public class InventoryReducer : IReducer<InventoryState>
{
    private const int LowStockThreshold = 5;

    public InventoryState Apply(InventoryState? state, Event @event)
    {
        var lines = (state ?? new InventoryState()).Lines;
        switch (@event.Type)
        {
            case "StockReceived":
            {
                var d = @event.GetData<StockChangeData>();
                lines = Adjust(lines, d.Sku, d.Location, d.Quantity);
                break;
            }
            case "StockShipped":
            {
                var d = @event.GetData<StockChangeData>();
                lines = Adjust(lines, d.Sku, d.Location, -d.Quantity);
                break;
            }
            case "StockMoved":
            {
                var d = @event.GetData<StockMoveData>();
                lines = Adjust(Adjust(lines, d.Sku, d.From, -d.Quantity), d.Sku, d.To, d.Quantity);
                break;
            }
            default:
                return state ?? new InventoryState();
        }

        var summary = (from line in lines
                       group line by line.Sku into g
                       orderby g.Key
                       select new SkuTotal(g.Key, g.Sum(l => l.Quantity), g.Count())).ToList();

        return new InventoryState
        {
            Lines = lines,
            Summary = summary,
            LowStock = summary.Where(s => s.Quantity < LowStockThreshold).Select(s => s.Sku).ToList(),
            Locations = lines.Select(l => l.Location).Distinct().OrderBy(l => l).ToList(),
            TotalUnits = lines.Sum(l => l.Quantity),
        };
    }

    private static List<StockLine> Adjust(List<StockLine> lines, string sku, string location, int delta)
    {
        bool Matches(StockLine l) => l.Sku == sku && l.Location == location;

        var existing = lines.FirstOrDefault(Matches);
        var quantity = Math.Max(0, (existing?.Quantity ?? 0) + delta);
        var rest = lines.Where(l => !Matches(l));
        var updated = quantity > 0 ? rest.Append(new StockLine(sku, location, quantity)) : rest;
        return updated.OrderBy(l => l.Sku).ThenBy(l => l.Location).ToList();
    }
}
