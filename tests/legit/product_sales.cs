using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using Hapnd.Projections.Contracts;

public record ProductSales
{
    public string Sku { get; init; } = "";
    public int UnitsSold { get; init; }
    public decimal Revenue { get; init; }
    public decimal AverageUnitPrice { get; init; }
    public int LineEvents { get; init; }
    public ImmutableSortedSet<string> Orders { get; init; } = ImmutableSortedSet<string>.Empty;
}

public record LineItemData(string Sku, int Quantity, decimal UnitPrice);

public class ProductSalesProjection : IProjection<ProductSales>
{
    public string? ResolveKey(Event @event) => @event.Type is "ItemAdded" or "ItemRemoved"
        ? @event.GetData<LineItemData>().Sku
        : null;

    public ProductSales Apply(ProductSales? state, Event @event)
    {
        var line = @event.GetData<LineItemData>();
        var row = state ?? new ProductSales { Sku = line.Sku };
        var sign = @event.Type == "ItemRemoved" ? -1 : 1;
        var units = row.UnitsSold + sign * line.Quantity;
        var revenue = row.Revenue + sign * line.Quantity * line.UnitPrice;
        return row with
        {
            UnitsSold = units,
            Revenue = revenue,
            AverageUnitPrice = units == 0 ? 0m : Math.Round(revenue / units, 2),
            LineEvents = row.LineEvents + 1,
            Orders = row.Orders.Add(@event.AggregateId),
        };
    }
}
